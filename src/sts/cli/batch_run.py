"""Running `sts generate` / `sts decode`, and starting them without click.

A run of 100,000 lines takes about a third of a second, so start-up counts: `quick` reads the
plain command lines itself (`sts [--sta-tables F] generate|decode [-i F] [-o F]
[--sta-tables F]`) and runs the job with nothing but the line engine loaded.  Any other command
line (help, a typo, an option given twice, a file that cannot be opened) returns None and click
parses it as always, with its messages.  Exit status: 0 when every line succeeded, 1 when any
line failed, 70 when the tool itself crashed (as sts.cli.common.run_guarded maps them).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself is not loaded on the way to the first line
if TYPE_CHECKING:
    from typing import IO

ENV_TABLES = "STS_STA_TABLES"
EXIT_CRASH = 70
_JOBS = ("generate", "decode")
_VALUE_OPTIONS = {"-i": "input", "--input": "input", "-o": "output", "--output": "output",
                  "--sta-tables": "sta_tables"}


def run_job(job: str, infile: IO[bytes], outfile: IO[bytes], sta_tables: str | None) -> int:
    """Answer every line of infile on outfile; 0 if all succeeded, else 1 (with a summary on
    stderr)."""
    import gc

    from sts.engine.stream import run_stream

    gc.disable()  # a batch allocates many short-lived objects and no cycles
    tally = run_stream(infile, outfile.write, job, sta_tables)
    outfile.flush()
    if tally.failed:
        note = ""
        if tally.expected:
            note = (f"; {tally.expected} of them failed as their own \"expected\": "
                    "{\"error\": ...} says they must (marked \"expected_error\": true)")
        sys.stderr.write(f"{tally.failed} line(s) failed{note}\n")
        sys.stderr.flush()
    return 1 if tally.failed else 0


def _options(args: list[str]) -> tuple[str, dict[str, str]] | None:
    """(job, options) of a plain command line, else None."""
    root: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i] not in _JOBS:
        step = _take(args, i, root, {"--sta-tables": "sta_tables"})
        if not step:
            return None
        i += step
    if i == len(args):
        return None
    job = args[i]
    found: dict[str, str] = {}
    i += 1
    while i < len(args):
        step = _take(args, i, found, _VALUE_OPTIONS)
        if not step:
            return None
        i += step
    if any(os.path.isdir(given.get("sta_tables", "")) for given in (root, found)):
        return None  # click says why
    if "sta_tables" not in found and "sta_tables" in root:
        found["sta_tables"] = root["sta_tables"]
    return job, found


def _take(args: list[str], i: int, into: dict[str, str], names: dict[str, str]) -> int:
    """Read option args[i] (`--name value`, `--name=value`, `-x value`) into `into`: the
    number of arguments it took, 0 if it is not a plain one (click then parses the line)."""
    arg = args[i]
    if arg.startswith("--") and "=" in arg:
        (name, value), step = arg.split("=", 1), 1
    elif i + 1 < len(args):
        name, value, step = arg, args[i + 1], 2
    else:
        return 0
    key = names.get(name)
    if key is None or key in into or not value or (value.startswith("-") and value != "-"):
        return 0
    into[key] = value
    return step


def quick(args: list[str]) -> int | None:
    """The exit status of a plain `sts generate` / `sts decode` run without click, or None
    when click should parse this command line."""
    parsed = _options(args)
    if parsed is None:
        return None
    job, found = parsed
    env = os.environ.get(ENV_TABLES) or None
    if env is not None and os.path.isdir(env):
        return None  # click says why (when it reads the variable)
    tables = found.get("sta_tables") or env
    source, target = found.get("input", "-"), found.get("output", "-")
    try:
        infile = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    except OSError:
        return None
    try:
        outfile = sys.stdout.buffer if target == "-" else open(target, "wb")  # noqa: SIM115
    except OSError:
        if infile is not sys.stdin.buffer:
            infile.close()
        return None
    try:
        return _guarded(job, infile, outfile, tables)
    finally:
        for f in (infile, outfile):
            if f is not sys.stdin.buffer and f is not sys.stdout.buffer:
                f.close()


def _guarded(job: str, infile: IO[bytes], outfile: IO[bytes], tables: str | None) -> int:
    """run_job with the CLI's error mapping (as sts.cli.common.run_guarded, without click)."""
    try:
        return run_job(job, infile, outfile, tables)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from sts.errors import StsError, exit_code_for

        if isinstance(exc, StsError):
            where = f" ({exc.field})" if exc.field else ""
            sys.stderr.write(f"error [{exc.code}]{where}: {exc.message}\n")
            return exit_code_for(exc)
        if os.environ.get("STS_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(exc).__name__}: {exc}\n")
        return EXIT_CRASH
