"""`sts generate` / `sts decode` over a byte stream: the compiled line engine answers the common
lines, Python the rest, in input order.

Input is read in large binary blocks and cut at the last newline (a line may span blocks; the
last line needs no newline).  The compiled line engine (`lines.c` in sts.crypto.native) takes a
block and writes the answer of every line that is plainly a class 0 credit request or token
for an EA07/EA11 meter; it hands back every other line, untouched, with its line number and
the place of its answer in the output.  Those lines get the answers of `sts.engine.batch`
(the Python fast path when there are many, else the generic path), which stays the single
authority for results and errors.  One output line per non-blank input line, as before.

Start-up matters here (a run of 100,000 lines takes a third of a second): this module loads
nothing but ctypes and the library; the engine, numpy and the STA tables are loaded only when
a line needs them.  Without the compiled core (no C compiler, STS_NATIVE=0) the Python batch
runner answers every line.
"""

from __future__ import annotations

import ctypes
import json
import os

from sts.crypto.native import Native, native

TYPE_CHECKING = False  # typing itself is not loaded on the way to the first line
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO, Any

    Write = Callable[[bytes | memoryview], Any]

BLOCK = 1 << 20  # bytes read at a time
OUT_START = 4 << 20  # output buffer (grown when one line's answer needs more)
BACKS = 4096  # handed-back lines per engine call
FAST_MIN = 2048  # hand-backs in one call worth the Python fast path (it loads numpy)
NAME_MAX = 64  # room for a table set name (lines.c: LINE_NAME_MAX)
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

    def __init__(self, nat: Native, job: str, tables_file: str | None) -> None:
        self.nat, self.job, self.tables_file = nat, job, tables_file
        self.decode = job == "decode"
        with open(_data_file("misty1-sboxes.json"), "rb") as f:
            boxes = json.load(f)  # the RFC 2994 S-boxes (data, not code)
        s7 = (ctypes.c_uint16 * 128)(*boxes["s7"])
        s9 = (ctypes.c_uint16 * 512)(*boxes["s9"])
        self.handle = nat.lines_new(ctypes.addressof(s7), ctypes.addressof(s9))
        if not self.handle:
            raise MemoryError("line engine")
        if self.decode:
            for sub, text in enumerate(answer_texts()):
                nat.lines_text(self.handle, sub, text, len(text))
        self.cap = OUT_START
        self.out = ctypes.create_string_buffer(self.cap)
        self.backs = (ctypes.c_int64 * (4 * BACKS))()
        self.res = (ctypes.c_int64 * 8)()
        self.tally = Tally()

    def close(self) -> None:
        if self.handle:
            self.nat.lines_free(self.handle)
            self.handle = None

    def _register(self, name: bytes) -> None:
        """Give the engine the table set a line names (or record that there is none)."""
        from sts.crypto.sta import table_set

        text = name.decode("ascii")
        try:
            ts = table_set(text, self.tables_file)
        except Exception:  # unknown name, no file, a bad file: those lines go to Python
            self._no_tables(name)
            return
        if self.nat.lines_table_set(self.handle, name, len(name), bytes(ts.s1), bytes(ts.s2),
                                    bytes(ts.p)):  # refused (no memory): Python answers them
            self._no_tables(name)

    def _no_tables(self, name: bytes) -> None:
        if self.nat.lines_table_set(self.handle, name, len(name), None, None, None):
            # the engine asks only for names it has room for: asking again would never end
            raise RuntimeError("the line engine refused a table set name")

    def feed(self, block: bytes, length: int, line_no: int, write: Write) -> int:
        """Answer the lines of block[:length] (line numbers from line_no); the next number."""
        start = 0
        out_addr = ctypes.addressof(self.out)
        backs_addr = ctypes.addressof(self.backs)
        res_addr = ctypes.addressof(self.res)
        while start < length:
            rnd = b"" if self.decode else os.urandom((length - start) // 32 + 64)
            status = self.nat.lines_run(self.handle, self.decode, block, start, length, out_addr,
                                        self.cap, backs_addr, BACKS, rnd, len(rnd), line_no,
                                        res_addr)
            reached, used, nback, line_no = self.res[0], self.res[1], self.res[2], self.res[3]
            if nback:
                self._emit_with_answers(block, used, nback, write)
            elif used:
                write(memoryview(self.out)[:used])  # no copy: write consumes it at once
            if status == _NEED_TABLES:
                name = ctypes.create_string_buffer(NAME_MAX)
                size = self.nat.lines_needed(self.handle, ctypes.addressof(name))
                self._register(name.raw[:size])
            elif status == _FULL and not used and not nback:  # one answer needs more room
                self.cap *= 2
                self.out = ctypes.create_string_buffer(self.cap)
                out_addr = ctypes.addressof(self.out)
            start = reached
        return line_no

    def _emit_with_answers(self, block: bytes, used: int, nback: int, write: Write) -> None:
        from sts.engine.batch import run_numbered

        backs = self.backs[: 4 * nback]
        lines = [(backs[i + 2], block[backs[i] : backs[i + 1]]) for i in range(0, 4 * nback, 4)]
        answers = run_numbered(lines, self.job, self.tables_file, fast=nback >= FAST_MIN)
        self.tally.python += nback
        out_addr = ctypes.addressof(self.out)
        parts: list[bytes] = []
        at = 0
        for i, (text, ok) in zip(range(0, 4 * nback, 4), answers, strict=True):
            self.tally.add(text, ok)
            place = backs[i + 3]
            if place > at:
                parts.append(ctypes.string_at(out_addr + at, place - at))
                at = place
            parts.append(text.encode() + b"\n")
        if used > at:
            parts.append(ctypes.string_at(out_addr + at, used - at))
        write(b"".join(parts))


def run_stream(infile: IO[bytes], write: Write, job: str, tables_file: str | None) -> Tally:
    """Answer every line of infile through `write`, in order; the tally of failed lines.

    `write` gets bytes-like objects that it must consume before it returns (a view of the
    engine's output buffer, which the next block overwrites), as a file's `write` does.
    """
    nat = native()
    if nat is None:
        return _run_python(infile, write, job, tables_file)
    try:
        engine = LineEngine(nat, job, tables_file)
    except (OSError, ValueError, KeyError, MemoryError):  # no S-box file, no memory
        return _run_python(infile, write, job, tables_file)
    try:
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
    finally:
        engine.close()


def _run_python(infile: IO[bytes], write: Write, job: str, tables_file: str | None) -> Tally:
    from sts.engine.batch import run_batch

    tally = Tally()
    for text, ok in run_batch(infile, job, tables_file):
        tally.add(text, ok)
        tally.python += 1
        write(text.encode() + b"\n")
    return tally
