"""Many meters at once: JSON Lines of `{"meter": id, "token": ..., "at": ...}` in, results out.

Meters come from a directory (`<id>.json`: a config or a state file made by `sts meter new`)
or from a JSON Lines file of configs, each with an `"id"`.  A meter defined by a config is
built on first use, at the time of its first line, so a fleet of a hundred thousand meters
costs nothing until it is used.  Each meter keeps its prepared cipher for the whole run;
nothing is written until `save`, so the runner's cost is the token decoding itself.

Output lines come in input order, one per input line: the meter id, the line number and
the token result (as `sts meter enter --json`), or `error`/`message`/`field` for a bad line.
Whatever a line holds, it gets its answer: a bug met on one line answers it with
`"error": "internal"` and the run goes on.  `failed` counts the lines answered with an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sts.codec.describe import describe
from sts.codec.digits import extract_class, parse_token
from sts.engine.lines import dump_line, is_blank, read_json_line
from sts.errors import InputError, MeterStateError, StsError, TokenFormatError
from sts.meter import store
from sts.meter.clock import FakeClock, parse_time
from sts.meter.keys import OwnKey
from sts.meter.machine import Meter
from sts.meter.settings import MeterConfig, parse_config
from sts.meter.state import STATE_FORMAT, MeterState

CHUNK = 2048  # lines decrypted together


@dataclass(frozen=True)
class _BadLine:
    error: StsError


class Fleet:
    def __init__(self, *, tables_file: str | None = None) -> None:
        self.tables_file = tables_file
        self.meters: dict[str, Meter] = {}
        self.clocks: dict[str, FakeClock] = {}
        self.pending: dict[str, MeterConfig] = {}  # configs not yet built
        self.failed = 0  # lines answered with an error (not counting meter rejections)

    # --- definition -------------------------------------------------------------------

    def add_config(self, meter_id: str, config: Any) -> None:
        if meter_id in self.meters or meter_id in self.pending:
            raise InputError(f"meter id {meter_id!r} is defined twice", field="id")
        self.pending[meter_id] = parse_config(config)

    def add_state(self, meter_id: str, state: MeterState) -> None:
        if meter_id in self.meters or meter_id in self.pending:
            raise InputError(f"meter id {meter_id!r} is defined twice", field="id")
        clock = FakeClock(state.env.now)
        self.clocks[meter_id] = clock
        self.meters[meter_id] = Meter(state, clock)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], *, tables_file: str | None = None) -> Fleet:
        """Meters from a directory of `<id>.json` files or a JSON Lines file of configs."""
        fleet = cls(tables_file=tables_file)
        source = Path(path)
        if source.is_dir():
            for file in sorted(source.glob("*.json")):
                try:
                    doc = json.loads(file.read_text())
                except ValueError as exc:
                    raise InputError(f"{file} is not valid JSON ({exc})", field="meters") from None
                if isinstance(doc, Mapping) and doc.get("format") == STATE_FORMAT:
                    fleet.add_state(file.stem, store.load_state(file, tables_file))
                else:
                    fleet.add_config(file.stem, doc)
            return fleet
        try:
            lines = source.read_text().splitlines()
        except OSError as exc:
            raise InputError(f"cannot read meters from {path}: {exc.strerror}",
                             field="meters") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path} line {number} is not valid JSON ({exc})",
                                 field="meters") from None
            if not isinstance(doc, Mapping) or not isinstance(doc.get("id"), str):
                raise InputError(f"{path} line {number} needs a string \"id\"", field="id")
            fleet.add_config(doc["id"], doc)
        return fleet

    def __len__(self) -> int:
        return len(self.meters) + len(self.pending)

    def meter(self, meter_id: str, at: float) -> Meter | None:
        """The meter `meter_id`, built now (at `at`) if it is only a config so far."""
        found = self.meters.get(meter_id)
        if found is not None:
            return found
        config = self.pending.get(meter_id)
        if config is None:
            return None
        clock = FakeClock(at)
        built = Meter.create(config, clock, tables_file=self.tables_file)
        del self.pending[meter_id]
        self.clocks[meter_id] = clock
        self.meters[meter_id] = built
        return built

    # --- running ----------------------------------------------------------------------

    def process(self, obj: Any, default_at: float) -> dict[str, Any]:
        """One input object -> one output object (never raises for a bad line)."""
        if not isinstance(obj, Mapping):
            return {"meter": None, "error": "invalid_input", "field": "line",
                    "message": f"each line must be a JSON object, got {describe(obj)}"}
        meter_id = obj.get("meter")
        out: dict[str, Any] = {"meter": meter_id}
        try:
            token = obj.get("token")
            if not isinstance(meter_id, str):
                raise InputError(f"\"meter\" must be a meter id string, got {describe(meter_id)}",
                                 field="meter")
            if not isinstance(token, str):
                raise TokenFormatError(
                    f"\"token\" must be a string of 20 digits, got {describe(token)}",
                    field="token")
            at_text = obj.get("at")
            at = default_at if at_text is None else parse_time(at_text)
            meter = self.meter(meter_id, at)
            if meter is None:
                out.update(error="unknown_meter", message=f"no meter {meter_id!r} in the fleet")
                return out
            self.clocks[meter_id].t = at  # earlier than the meter's time: time_backwards
            result = meter.enter(token)
            meter.events.clear()
        except StsError as exc:
            out.update(error=exc.code, message=exc.message)
            if exc.field:
                out["field"] = exc.field
            return out
        out.update(result.as_dict())
        return out

    def run(self, lines: Iterable[str | bytes], default_at: float, *,
            batch: bool = True) -> Iterator[str]:
        """JSON Lines in, JSON Lines out, in input order (blank lines are skipped).

        Lines are taken in chunks; with `batch`, the EA07 decryptions of a chunk are done
        ahead in one vectorised call (`_predecrypt`), then the lines run one by one exactly
        as without it.
        """
        chunk: list[tuple[int, Any]] = []
        for number, line in enumerate(lines, 1):
            if is_blank(line):
                continue
            try:
                obj = read_json_line(line, number, exact=True)
            except StsError as exc:
                obj = _BadLine(exc)
            chunk.append((number, obj))
            if len(chunk) >= CHUNK:
                yield from self._run_chunk(chunk, default_at, batch)
                chunk = []
        if chunk:
            yield from self._run_chunk(chunk, default_at, batch)

    def _run_chunk(self, chunk: list[tuple[int, Any]], default_at: float,
                   batch: bool) -> Iterator[str]:
        touched: list[OwnKey] = []
        if batch:
            try:
                touched = self._predecrypt(chunk, default_at)
            except Exception:  # an optimisation only: the lines decrypt one by one instead
                touched = []
        try:
            for number, obj in chunk:
                out: dict[str, Any]
                if isinstance(obj, _BadLine):
                    out = {"meter": None, "error": obj.error.code, "message": obj.error.message,
                           "field": obj.error.field or "line"}
                else:
                    try:
                        out = self.process(obj, default_at)
                    except Exception as exc:  # a bug of ours: answer this line, go on
                        meter_id = obj.get("meter") if isinstance(obj, Mapping) else None
                        out = {"meter": meter_id, "error": "internal",
                               "message": f"internal error ({type(exc).__name__}); please "
                               "report this line"}
                out["line"] = number
                if "error" in out:
                    self.failed += 1
                yield dump_line(out)
        finally:
            for key in touched:
                key.hints.clear()  # hints not used (lockout, key changed) are dropped

    def _predecrypt(self, chunk: list[tuple[int, Any]], default_at: float) -> list[OwnKey]:
        """Decrypt the chunk's class 0/2 tokens for EA07 meters in one numpy call per table
        set, and hand each result to the key it belongs to."""
        groups: dict[int, tuple[Any, list[int], list[int], list[OwnKey]]] = {}
        for _, obj in chunk:
            if not isinstance(obj, Mapping):
                continue
            meter_id, token = obj.get("meter"), obj.get("token")
            if not isinstance(meter_id, str) or not isinstance(token, str):
                continue
            try:
                meter = self.meters.get(meter_id)
                if meter is None:
                    at_text = obj.get("at")
                    meter = self.meter(meter_id,
                                       default_at if at_text is None else parse_time(at_text))
                    if meter is None:
                        continue
                number = (int(token) if len(token) == 20 and token.isascii() and token.isdigit()
                          else parse_token(token))
            except StsError:
                continue  # the line will report it
            key = meter.state.memory.key
            token_class, block = extract_class(number)
            if key.table_set is None or token_class not in (0, 2) or number >> 66:
                continue
            group = groups.setdefault(id(key.table_set), (key.table_set, [], [], []))
            group[1].append(key.key_int)
            group[2].append(block)
            group[3].append(key)
        if not groups:
            return []
        import numpy as np

        from sts.crypto.sta_batch import batch_cipher

        touched: dict[int, OwnKey] = {}
        for tables, keys, blocks, owners in groups.values():
            plain = batch_cipher(tables.cipher).decrypt(
                np.array(keys, dtype=np.uint64), np.array(blocks, dtype=np.uint64)
            ).tolist()
            for owner, block, value in zip(owners, blocks, plain, strict=True):
                owner.hint(block, value)
                touched[id(owner)] = owner
        return list(touched.values())

    def save(self, directory: str | os.PathLike[str]) -> int:
        """Write every meter that was used (or loaded) as `<id>.json` state files."""
        target = Path(directory)
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MeterStateError(f"cannot create {directory}: {exc.strerror}",
                                  field="save_dir") from None
        for meter_id, meter in self.meters.items():
            if "/" in meter_id or meter_id in ("", ".", ".."):
                raise InputError(f"meter id {meter_id!r} cannot be a file name", field="id")
            store.save_state(target / f"{meter_id}.json", meter.state)
        return len(self.meters)
