"""`sts generate` / `sts decode` over a byte stream: the compiled line engine answers the common
lines, Python the rest, in input order.

Input is read in large binary blocks and cut at the last newline (a line may span blocks; the
last line needs no newline).  The compiled line engine (`lines.c`, the LineEngine of the
compiled core sts.crypto._native) takes a block and writes the answer of every line that is
plainly a class 0 credit request or token for an EA07/EA11 meter; it hands back every other
line, untouched, with its line number and the place of its answer in the output.  Those lines
get the answers of `sts.engine.batch` (the Python fast path when there are many, else the
generic path), which stays the single authority for results and errors.  One output line per
non-blank input line.

Start-up matters here (a run of 100,000 lines takes a third of a second): this module loads
nothing but the compiled core; the engine, numpy and the STA tables are loaded only when a line
needs them.  Without the compiled core (not built, STS_NATIVE=0) the Python batch runner
answers every line.
"""

from __future__ import annotations

import json
import os
from array import array

from sts.crypto.native import native

TYPE_CHECKING = False  # typing itself is not loaded on the way to the first line
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import IO, Any

    Write = Callable[[bytes | memoryview], Any]

BLOCK = 1 << 20  # bytes read at a time
OUT_START = 4 << 20  # output buffer (grown when one line's answer needs more)
BACKS = 4096  # handed-back lines per engine call
FAST_MIN = 2048  # hand-backs in one call worth the Python fast path (it loads numpy)
_DONE, _NEED_TABLES, _FULL = 0, 1, 2
_EXPECTED = '"expected_error":true'
# per credit subclass 0-3, the `kind` and `description` of a decoded line as sts.codec.layouts
# names them (tests/engine/test_line_engine.py holds the two equal): written here so that
# `sts decode` starts without loading the layouts
CREDIT_TEXTS = (
    ("credit_electricity", "transfer electricity credit (kWh)"),
    ("credit_water", "transfer water credit (kl)"),
    ("credit_gas", "transfer gas credit (m3)"),
    ("credit_time", "transfer time credit (min)"),
)


class Tally:
    """Failed lines, how many of them failed as their own vector line said they must, and how
    many lines Python answered (all of them without the compiled engine)."""

    def __init__(self) -> None:
        self.failed = 0
        self.expected = 0
        self.python = 0

    def add(self, text: str, ok: bool) -> None:
        if not ok:
            self.failed += 1
            self.expected += _EXPECTED in text


def _data_file(name: str) -> str:
    import sts.crypto

    return os.path.join(os.path.dirname(os.path.abspath(sts.crypto.__file__)), "data", name)


def answer_texts() -> list[bytes]:
    """Per credit subclass 0-3, the `"kind"` and `"description"` members of a decoded line."""
    return [b"," + json.dumps({"kind": kind, "description": text}, separators=(",", ":"))[1:-1]
            .encode() for kind, text in CREDIT_TEXTS]


class LineEngine:
    """One run of the compiled line engine: its state, buffers and the Python answers."""

    def __init__(self, core: ModuleType, job: str, tables_file: str | None) -> None:
        self.core, self.job, self.tables_file = core, job, tables_file
        self.decode = job == "decode"
        with open(_data_file("misty1-sboxes.json"), "rb") as f:
            boxes = json.load(f)  # the RFC 2994 S-boxes (data, not code)
        self.engine = core.LineEngine(array("H", boxes["s7"]), array("H", boxes["s9"]))
        if self.decode:
            for sub, text in enumerate(answer_texts()):
                self.engine.text(sub, text)
        self.out = bytearray(OUT_START)
        self.backs = array("q", bytes(8 * 4 * BACKS))  # per handed-back line: 4 int64
        self.tally = Tally()

    def _register(self, name: bytes) -> None:
        """Give the engine the table set a line names (or record that there is none)."""
        from sts.crypto.sta import table_set

        try:
            ts = table_set(name.decode("ascii"), self.tables_file)
            tables = self.core.StaTables(bytes(ts.s1), bytes(ts.s2), bytes(ts.p))
        except Exception:  # unknown name, no file, a bad file: those lines go to Python
            tables = None
        # the engine asks only for names it has room for, so this is never refused
        self.engine.table_set(name, tables)

    def feed(self, block: bytes, length: int, line_no: int, write: Write) -> int:
        """Answer the lines of block[:length] (line numbers from line_no); the next number."""
        start = 0
        run = self.engine.run
        while start < length:
            rnd = b"" if self.decode else os.urandom((length - start) // 32 + 64)
            status, reached, used, nback, line_no = run(self.decode, block, start, length,
                                                        self.out, self.backs, rnd, line_no)
            if nback:
                self._emit_with_answers(block, used, nback, write)
            elif used:
                write(memoryview(self.out)[:used])  # no copy: write consumes it at once
            if status == _NEED_TABLES:
                self._register(self.engine.needed())
            elif status == _FULL and not used and not nback:  # one answer needs more room
                self.out = bytearray(2 * len(self.out))
            start = reached
        return line_no

    def _emit_with_answers(self, block: bytes, used: int, nback: int, write: Write) -> None:
        from sts.engine.batch import run_numbered

        backs = self.backs[: 4 * nback]
        lines = [(backs[i + 2], block[backs[i] : backs[i + 1]]) for i in range(0, 4 * nback, 4)]
        answers = run_numbered(lines, self.job, self.tables_file, fast=nback >= FAST_MIN)
        self.tally.python += nback
        out = self.out
        parts: list[bytes | bytearray] = []
        at = 0
        for i, (text, ok) in zip(range(0, 4 * nback, 4), answers, strict=True):
            self.tally.add(text, ok)
            place = backs[i + 3]
            if place > at:
                parts.append(out[at:place])
                at = place
            parts.append(text.encode() + b"\n")
        if used > at:
            parts.append(out[at:used])
        write(b"".join(parts))


def run_stream(infile: IO[bytes], write: Write, job: str, tables_file: str | None) -> Tally:
    """Answer every line of infile through `write`, in order; the tally of failed lines.

    `write` gets bytes-like objects that it must consume before it returns (a view of the
    engine's output buffer, which the next block overwrites), as a file's `write` does.
    """
    core = native()
    if core is None:
        return _run_python(infile, write, job, tables_file)
    try:
        engine = LineEngine(core, job, tables_file)
    except (OSError, ValueError, KeyError, MemoryError):  # no S-box file, no memory
        return _run_python(infile, write, job, tables_file)
    read = infile.read
    line_no = 1
    pending: list[bytes] = []  # the start of a line that has not ended yet
    while True:
        data = read(BLOCK)
        if not data:
            if pending:
                last = b"".join(pending)
                engine.feed(last, len(last), line_no, write)
            return engine.tally
        cut = data.rfind(b"\n") + 1
        if not cut:
            pending.append(data)
            continue
        if pending:
            pending.append(data)
            data = b"".join(pending)
            cut += len(data) - len(pending[-1])
            pending = []
        line_no = engine.feed(data, cut, line_no, write)
        if cut < len(data):
            pending.append(data[cut:])


def _run_python(infile: IO[bytes], write: Write, job: str, tables_file: str | None) -> Tally:
    from sts.engine.batch import run_batch

    tally = Tally()
    for text, ok in run_batch(infile, job, tables_file):
        tally.add(text, ok)
        tally.python += 1
        write(text.encode() + b"\n")
    return tally
