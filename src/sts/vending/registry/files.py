"""Reading meter import files: CSV (with a header) and JSON Lines, one record per meter.

Each record comes back with its line number; a record that cannot be read at all (bad JSON,
wrong number of cells) comes back as a `Reject` so the import reports it with the others.
Header names are matched loosely (case, spaces, dashes, common synonyms).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

from sts.errors import InputError
from sts.vending.i18n import N_

FORMATS = ("csv", "jsonl")
# header spellings accepted for each field (lower case; spaces and dashes read as "_")
ALIASES = {
    "meter": ("meter", "meter_number", "meter_no", "pan", "drn", "meter_pan"),
    "sgc": ("sgc", "supply_group", "supply_group_code"),
    "krn": ("krn", "key_revision", "key_revision_number"),
    "ti": ("ti", "tariff_index"),
    "kt": ("kt", "key_type"),
    "ea": ("ea", "encryption_algorithm"),
    "dkga": ("dkga", "key_generation_algorithm"),
    "base_date": ("base_date", "bd"),
    "ken": ("ken", "key_expiry_number"),
    "tariff": ("tariff", "tariff_name"),
    "service": ("service",),
    "account_no": ("account_no", "account", "account_number", "customer"),
    "name": ("name", "customer_name"),
    "address": ("address", "customer_address"),
    "phone": ("phone", "customer_phone"),
}
_FIELD_OF = {alias: name for name, aliases in ALIASES.items() for alias in aliases}


@dataclass(frozen=True)
class Reject:
    """One refused row: its line in the file, the field and the rule it broke."""

    line: int
    field: str
    code: str
    message: str
    meter: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "field": self.field, "code": self.code,
                               "message": self.message}
        if self.meter:
            out["meter"] = self.meter
        return out


Row = tuple[int, Mapping[str, Any] | Reject]


def detect_format(path: str, head: bytes) -> str:
    low = path.lower()
    if low.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if low.endswith((".csv", ".txt")):
        return "csv"
    return "jsonl" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else "csv"


def read_rows(stream: IO[bytes], fmt: str) -> Iterator[Row]:
    """(line number, fields) per record; unreadable records come as a Reject."""
    if fmt == "csv":
        return _read_csv(stream)
    if fmt == "jsonl":
        return _read_jsonl(stream)
    raise InputError(N_("format must be one of {formats}, got {got}"), field="format",
                     formats=", ".join(FORMATS), got=repr(fmt))


def _canon(header: str) -> str:
    h = header.strip().lower().replace(" ", "_").replace("-", "_")
    return _FIELD_OF.get(h, h)


def _read_csv(stream: IO[bytes]) -> Iterator[Row]:
    textual = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(textual)
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [_canon(h) for h in header]
        _check_header(names)
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if len(cells) != len(names):
                yield line, Reject(line, "row", "invalid_input",
                                   f"line has {len(cells)} cells, the header {len(names)}")
                continue
            yield line, dict(zip(names, cells, strict=True))
    except UnicodeDecodeError:
        raise InputError(N_("the file is not UTF-8 text (near line {line})"), field="file",
                         line=reader.line_num + 1) from None
    except csv.Error as exc:
        raise InputError(N_("line {line}: not valid CSV ({why})"), field="file",
                         line=reader.line_num, why=str(exc)) from None


def _check_header(names: list[str]) -> None:
    if "meter" not in names:
        raise InputError(N_("the header needs a meter column (meter, meter_number or pan)"),
                         field="header")
    unknown = [n for n in names if n not in ALIASES]
    if unknown:
        raise InputError(N_("unknown column(s) {unknown}; known: {known}"), field="header",
                         unknown=", ".join(map(repr, unknown[:5])), known=", ".join(ALIASES))
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(N_("column(s) given twice: {names}"), field="header",
                         names=", ".join(sorted(dup)))


def _read_jsonl(stream: IO[bytes]) -> Iterator[Row]:
    for line, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        if line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield line, Reject(line, "row", "invalid_input", "the line is not UTF-8 text")
            continue
        except (ValueError, RecursionError):
            yield line, Reject(line, "row", "invalid_input", "the line is not valid JSON")
            continue
        if not isinstance(obj, dict):
            yield line, Reject(line, "row", "invalid_input", "each line must be a JSON object")
            continue
        names = {k: _canon(k) for k in obj}
        unknown = [k for k, n in names.items() if n not in ALIASES]
        if unknown:
            yield line, Reject(line, unknown[0][:40], "invalid_input",
                               f"unknown field {unknown[0][:40]!r}; known: {', '.join(ALIASES)}")
            continue
        yield line, {names[k]: v for k, v in obj.items()}


