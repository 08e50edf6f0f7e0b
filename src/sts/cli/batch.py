"""`sts generate` and `sts decode`: JSON Lines in, JSON Lines out, one line per line, in order.

Exit status 0 when every line succeeded, 1 when any line failed (each failure is reported on
its own output line as {"id", "error", "message", "field"?, "line"}), 70 when the tool itself
crashed.  Input is read as bytes so a line that is not UTF-8 is one failed line, not a crash.
"""

from __future__ import annotations

from typing import IO

import click

from sts.cli.common import tables_option


def _run(job: str, infile: IO[bytes], outfile: IO[str], sta_tables: str | None) -> int:
    import gc

    from sts.engine.batch import run_batch

    gc.disable()  # a batch allocates millions of short-lived dicts and no cycles
    failed = expected = 0
    write = outfile.write
    for text, ok in run_batch(infile, job, sta_tables):
        if not ok:
            failed += 1
            expected += '"expected_error":true' in text
        write(text)
        write("\n")
    outfile.flush()
    if failed:
        note = ""
        if expected:
            note = (f"; {expected} of them failed as their own \"expected\": {{\"error\": ...}} "
                    "says they must (marked \"expected_error\": true)")
        click.echo(f"{failed} line(s) failed{note}", err=True)
    return 1 if failed else 0


@click.command()
@click.option("-i", "--input", "infile", type=click.File("rb"), default="-",
              help="JSON Lines of {id, meter, request} (default stdin)")
@click.option("-o", "--output", "outfile", type=click.File("w"), default="-",
              help="where to write {id, tokens, blocks, tid} lines (default stdout)")
@tables_option
def generate(infile: IO[bytes], outfile: IO[str], sta_tables: str | None) -> int:
    """Make tokens for JSON Lines requests (meter and request as in FORMAT.md)."""
    return _run("generate", infile, outfile, sta_tables)


@click.command()
@click.option("-i", "--input", "infile", type=click.File("rb"), default="-",
              help="JSON Lines of {id, token, meter} (default stdin)")
@click.option("-o", "--output", "outfile", type=click.File("w"), default="-",
              help="where to write decoded lines (default stdout)")
@tables_option
def decode(infile: IO[bytes], outfile: IO[str], sta_tables: str | None) -> int:
    """Decode JSON Lines tokens: class, subclass, block and the request's fields."""
    return _run("decode", infile, outfile, sta_tables)

