"""`sts generate` and `sts decode`: JSON Lines in, JSON Lines out, one line per line, in order.

Exit status 0 when every line succeeded, 1 when any line failed (each failure is reported on
its own output line as {"id", "error", "message", "field"?, "line"}), 70 when the tool itself
crashed.  Input is read as bytes so a line that is not UTF-8 is one failed line, not a crash.
The run itself is `sts.cli.batch_run.run_job` (which plain command lines reach without click).
"""

from __future__ import annotations

from typing import IO

import click

from sts.cli.batch_run import run_job
from sts.cli.common import tables_option


@click.command()
@click.option("-i", "--input", "infile", type=click.File("rb"), default="-",
              help="JSON Lines of {id, meter, request} (default stdin)")
@click.option("-o", "--output", "outfile", type=click.File("wb"), default="-",
              help="where to write {id, tokens, blocks, tid} lines (default stdout)")
@tables_option
def generate(infile: IO[bytes], outfile: IO[bytes], sta_tables: str | None) -> int:
    """Make tokens for JSON Lines requests (meter and request as in FORMAT.md)."""
    return run_job("generate", infile, outfile, sta_tables)


@click.command()
@click.option("-i", "--input", "infile", type=click.File("rb"), default="-",
              help="JSON Lines of {id, token, meter} (default stdin)")
@click.option("-o", "--output", "outfile", type=click.File("wb"), default="-",
              help="where to write decoded lines (default stdout)")
@tables_option
def decode(infile: IO[bytes], outfile: IO[bytes], sta_tables: str | None) -> int:
    """Decode JSON Lines tokens: class, subclass, block and the request's fields."""
    return run_job("decode", infile, outfile, sta_tables)

