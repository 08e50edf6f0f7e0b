"""`sts admin migrate --check`: the pending migrations, each with its revision id, what it is
for and the statements it would run (sts.vending.storage.migration_plan), nothing changed.
Exit 0 when the schema is current, 1 when migrations are pending."""

from __future__ import annotations

import textwrap

import click

from sts.cli.common import emit_json
from sts.cli.context import settings_of, wants_json


def migrate_check(ctx: click.Context) -> int:
    from sts.vending.storage.database import Database
    from sts.vending.storage.migration_plan import pending

    db = Database(settings_of(ctx).db_url, pool_size=1)
    try:
        current, head, steps = pending(db)
    finally:
        db.dispose()
    if wants_json(ctx):
        emit_json({"revision": current, "head": head, "pending": [s.public() for s in steps]})
        return 1 if steps else 0
    if not steps:
        click.echo(f"schema at revision {current}: no migration pending")
        return 0
    click.echo(f"schema at revision {current or '(empty database)'}; {len(steps)} migration(s) "
               f"pending up to {head} (nothing has been changed):")
    for step in steps:
        click.echo(f"\n== {step.revision} (after {step.down_revision or 'nothing'})")
        click.echo(textwrap.indent(step.doc, "   "))
        for sql in step.statements:
            click.echo(textwrap.indent(sql + ";", "     "))
        if step.note:
            click.echo(f"   {step.note}")
        for problem in step.problems:
            click.echo(f"   ! an older server may stop: {problem}")
    return 1
