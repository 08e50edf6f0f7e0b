"""EA07, the Standard Transfer Algorithm (spec digest §6.1), driven by a table set as data.

The standard's sample tables are built in.  The production ("actual") tables are distributed
by the STS Association to users on request: they are never shipped in this package and are
loaded from a JSON file in the format of `shared/vectors/sta-tables.json`, named by a flag,
the STS_STA_TABLES environment variable or configuration.

Implementation: a round is a nibble substitution (S1 or S2, chosen per nibble by a key bit)
followed by a bit permutation.  Both are folded into per-byte lookup tables: for byte j of
the state and the two selector bits of its nibbles, one table entry holds the permuted
64-bit contribution of the substituted byte, so a round is eight lookups OR-ed together.
The same tables drive the vectorised batch path (`sts.crypto.sta_batch`); the compiled core
(`sts.crypto.native`), when built, folds the same tables from S1, S2 and P itself:
`encrypt_py` / `decryptor_py` are the Python forms it must equal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sts.crypto.native import native
from sts.errors import ConfigError

if TYPE_CHECKING:
    from sts.crypto._native import StaTables

MASK64 = (1 << 64) - 1
ROUNDS = 16
ENV_TABLES = "STS_STA_TABLES"
# per-byte selector bits: bit 8j+3 (low nibble) and bit 8j+7 (high nibble) of a round key
_SEL_LOW = 0x0808080808080808
_SEL_HIGH = 0x8080808080808080


def _perm_check(values: list[int], size: int, what: str) -> tuple[int, ...]:
    if sorted(values) != list(range(size)):
        raise ConfigError(f"STA table {what} is not a permutation of 0..{size - 1}", field=what)
    return tuple(values)


@dataclass(frozen=True)
class TableSet:
    """S1, S2 (4-bit substitutions) and P (64-bit permutation) of an STA table set."""

    name: str
    s1: tuple[int, ...]
    s2: tuple[int, ...]
    p: tuple[int, ...]
    source: str = ""

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> TableSet:
        try:
            s1 = _perm_check(list(data["s1"]), 16, "s1")
            s2 = _perm_check(list(data["s2"]), 16, "s2")
            p = _perm_check(list(data["p"]), 64, "p")
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"STA table set {name!r} lacks s1, s2 or p ({exc})") from None
        # inverses, when given, must agree with the forward tables
        for key, fwd, size in (("s1_inv", s1, 16), ("s2_inv", s2, 16), ("p_inv", p, 64)):
            if key in data:
                inv = list(data[key])
                if len(inv) != size or any(inv[fwd[i]] != i for i in range(size)):
                    raise ConfigError(f"STA table set {name!r}: {key} is not the inverse", field=key)
        return cls(name, s1, s2, p, str(data.get("source", "")))

    @cached_property
    def cipher(self) -> Sta:
        """The prepared cipher (built once per table set: its lookup tables take ~20 ms)."""
        return Sta(self)


def _permute(value: int, p: tuple[int, ...]) -> int:
    out = 0
    while value:
        low = value & -value
        out |= 1 << p[low.bit_length() - 1]
        value ^= low
    return out


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, v in enumerate(perm):
        inv[v] = i
    return tuple(inv)


class Sta:
    """Encrypt/decrypt 64-bit blocks under 64-bit keys with one table set."""

    def __init__(self, tables: TableSet) -> None:
        self.tables = tables
        s = (tables.s1, tables.s2)
        si = (_inverse(tables.s1), _inverse(tables.s2))
        p = tables.p
        pi = _inverse(p)
        # enc[(j*4 + sel)*256 + b] = P(S_sel(b) << 8j); sel bit0 -> low nibble uses S2
        enc = [0] * (8 * 4 * 256)
        # dec[...] = Pinv(Sinv_sel(b) << 8j): an inverse substitution then the next Pinv
        dec = [0] * (8 * 4 * 256)
        # sub_inv[...] = Sinv_sel(b) << 8j: the final inverse substitution (no permutation)
        sub_inv = [0] * (8 * 4 * 256)
        # pinv[j*256 + b] = Pinv(b << 8j): the first inverse permutation
        pinv = [0] * (8 * 256)
        for j in range(8):
            for b in range(256):
                pinv[j * 256 + b] = _permute(b << (8 * j), pi)
                for sel in range(4):
                    lo_t, hi_t = s[sel & 1], s[sel >> 1]
                    sub = lo_t[b & 15] | (hi_t[b >> 4] << 4)
                    lo_i, hi_i = si[sel & 1], si[sel >> 1]
                    isub = lo_i[b & 15] | (hi_i[b >> 4] << 4)
                    idx = (j * 4 + sel) * 256 + b
                    enc[idx] = _permute(sub << (8 * j), p)
                    dec[idx] = _permute(isub << (8 * j), pi)
                    sub_inv[idx] = isub << (8 * j)
        self.enc = enc
        self.dec = dec
        self.sub_inv = sub_inv
        self.pinv = pinv
        self.batch: Any = None  # the numpy form, made on first batch use (sts.crypto.sta_batch)
        self._compiled: StaTables | None = None

    def compiled(self) -> StaTables | None:
        """This table set in the compiled core, or None when the core is not in use."""
        core = native()
        if core is None:
            return None
        if self._compiled is None:
            t = self.tables
            self._compiled = core.StaTables(bytes(t.s1), bytes(t.s2), bytes(t.p))
        return self._compiled

    @staticmethod
    def round_selectors(key: int) -> list[int]:
        """Per round, the nibble selectors shifted so byte j's two bits sit at 8j+8, 8j+9.

        Round key r is ROL(ROR(NOT key, 12), r); nibble n uses S2 when its bit 4n+3 is set.
        Moving bits 8j+3 and 8j+7 up to 8j+8 and 8j+9 lets a round form each table index as
        `(sel >> 8j & 0x300) | (x >> 8j & 0xFF)` (Python ints: bit 65 needs no mask).
        """
        k = ~key & MASK64
        k = (k >> 12 | k << 52) & MASK64
        doubled = k | k << 64
        out = []
        for r in range(ROUNDS):
            kr = (doubled >> (64 - r)) & MASK64 if r else k
            out.append((kr & _SEL_LOW) << 5 | (kr & _SEL_HIGH) << 2)
        return out

    @staticmethod
    def _round(t: list[int], s: int, x: int) -> int:
        return (
            t[(s & 0x300) | (x & 255)]
            | t[1024 | (s >> 8 & 0x300) | (x >> 8 & 255)]
            | t[2048 | (s >> 16 & 0x300) | (x >> 16 & 255)]
            | t[3072 | (s >> 24 & 0x300) | (x >> 24 & 255)]
            | t[4096 | (s >> 32 & 0x300) | (x >> 32 & 255)]
            | t[5120 | (s >> 40 & 0x300) | (x >> 40 & 255)]
            | t[6144 | (s >> 48 & 0x300) | (x >> 48 & 255)]
            | t[7168 | (s >> 56 & 0x300) | (x >> 56)]
        )

    def encrypt(self, key: int, block: int) -> int:
        """EA07 encryption: the compiled core when built, else `encrypt_py` (same result)."""
        c = self.compiled()
        if c is not None and 0 <= key <= MASK64 and 0 <= block <= MASK64:
            return c.encrypt(key, block)
        return self.encrypt_py(key, block)

    def encrypt_py(self, key: int, block: int) -> int:
        """The table form in Python (the fallback, and the compiled core's reference)."""
        step = self._round
        t = self.enc
        x = block
        for s in self.round_selectors(key):
            x = step(t, s, x)
        return x

    def decryptor(self, key: int) -> Callable[[int], int]:
        """Decryption under one key with its schedule computed once (a meter's own key)."""
        c = self.compiled()
        if c is not None and 0 <= key <= MASK64:
            run = c.decrypt

            def decrypt_native(block: int) -> int:
                if not 0 <= block <= MASK64:
                    return self.decryptor_py(key)(block)
                return run(key, block)

            return decrypt_native
        return self.decryptor_py(key)

    def decryptor_py(self, key: int) -> Callable[[int], int]:
        """The Python form of `decryptor`."""
        sels = self.round_selectors(key)
        pi, t, last, step = self.pinv, self.dec, self.sub_inv, self._round
        inner = sels[ROUNDS - 1 : 0 : -1]
        first = sels[0]

        def decrypt(block: int) -> int:
            x = (
                pi[block & 255] | pi[256 | (block >> 8 & 255)] | pi[512 | (block >> 16 & 255)]
                | pi[768 | (block >> 24 & 255)] | pi[1024 | (block >> 32 & 255)]
                | pi[1280 | (block >> 40 & 255)] | pi[1536 | (block >> 48 & 255)]
                | pi[1792 | (block >> 56)]
            )
            for s in inner:
                x = step(t, s, x)
            return step(last, first, x)

        return decrypt

    def decrypt(self, key: int, block: int) -> int:
        c = self.compiled()
        if c is not None and 0 <= key <= MASK64 and 0 <= block <= MASK64:
            return c.decrypt(key, block)
        return self.decryptor_py(key)(block)

    def decrypt_py(self, key: int, block: int) -> int:
        return self.decryptor_py(key)(block)


# --- table set resolution -----------------------------------------------------------------


@cache
def sample_tables() -> TableSet:
    """The sample tables printed in IEC 62055-41 (built in; for tests and demos only)."""
    text = resources.files("sts.crypto").joinpath("data/sta-sample.json").read_text()
    return TableSet.from_dict("sample", json.loads(text)["sample"])


@cache
def _load_file(path: str) -> dict[str, TableSet]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"STA table file {path} does not exist", field="sta_tables") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"STA table file {path} is not readable JSON: {exc}",
                          field="sta_tables") from None
    if not isinstance(data, dict):
        raise ConfigError(f"STA table file {path} must hold a JSON object", field="sta_tables")
    return {
        name: TableSet.from_dict(name, value)
        for name, value in data.items()
        if isinstance(value, dict) and "s1" in value
    }


def load_table_sets(path: str | os.PathLike[str]) -> dict[str, TableSet]:
    """All table sets in a file in the `sta-tables.json` format (cached per path)."""
    return _load_file(str(Path(path).resolve()))


def table_set(name: str = "production", path: str | os.PathLike[str] | None = None) -> TableSet:
    """Resolve a table set by name: `sample` is built in; others come from a file.

    The file is `path`, else $STS_STA_TABLES.  No file means a clear ConfigError: the
    production tables are never guessed or embedded.
    """
    if name == "sample" and path is None:
        return sample_tables()
    chosen = path if path is not None else os.environ.get(ENV_TABLES)
    if not chosen:
        if name == "sample":
            return sample_tables()
        raise ConfigError(
            f"the STA table set {name!r} is not built in: give its file with --sta-tables FILE "
            f"or the {ENV_TABLES} environment variable (format of sta-tables.json)",
            field="table_set",
        )
    sets = load_table_sets(chosen)
    if name not in sets:
        if name == "sample":
            return sample_tables()
        raise ConfigError(
            f"STA table file {chosen} has no table set {name!r} (has: {', '.join(sorted(sets))})",
            field="table_set",
        )
    return sets[name]
