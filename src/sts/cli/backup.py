"""`sts admin backup` and `sts admin restore` (the work is `sts.vending.storage.backup`)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from sts.cli.common import emit_json
from sts.cli.context import VendingCommand, settings_of, wants_json


@click.command("backup", cls=VendingCommand)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="the backup file (SQLite: a database file; PostgreSQL: a pg_dump "
                   "custom-format archive); written mode 0600, replaced only when complete")
@click.pass_context
def admin_backup(ctx: click.Context, out_path: str) -> None:
    """Back up the database while the server runs (the KEK is never in it)."""
    from sts.cli.common import mask_url
    from sts.vending.storage.backup import NOT_IN_BACKUP, backup

    url = settings_of(ctx).db_url
    result = backup(url, Path(out_path))
    if wants_json(ctx):
        emit_json(result.as_dict() | {"database": mask_url(url)})
        return
    rows = result.rows
    counts = (f"; {rows.get('transactions', 0)} transactions, {rows.get('tokens', 0)} tokens, "
              f"{rows.get('vending_keys', 0)} vending keys") if rows else ""
    click.echo(f"backup of {mask_url(url)} written to {out_path} ({result.kind}, "
               f"{result.size} bytes, {result.seconds:.1f} s{counts})")
    click.echo(f"note: {NOT_IN_BACKUP}")


@click.command("restore", cls=VendingCommand)
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="check the audit and transaction hash chains of the restored database")
@click.pass_context
def admin_restore(ctx: click.Context, path: str, verify: bool) -> None:
    """Restore a backup into an empty database (--db, required; a non-empty one is refused)."""
    from sts.cli.common import mask_url
    from sts.errors import InputError
    from sts.vending import audit
    from sts.vending.storage.backup import NOT_IN_BACKUP, restore
    from sts.vending.storage.database import Database

    given = (ctx.find_object(dict) or {}).get("shared", {}).get("db_url")
    if not (given or os.environ.get("STS_DB_URL")):
        raise InputError("name the database to restore into: --db URL (a new SQLite file or "
                         "an empty PostgreSQL database)", field="db")
    url = settings_of(ctx).db_url
    result = restore(Path(path), url)
    out = result.as_dict() | {"database": mask_url(url)}
    ok = True
    if verify:
        db = Database(url)
        try:
            checked = audit.verify(db)
        finally:
            db.dispose()
        out["audit"] = checked.as_dict()
        ok = checked.ok
    if wants_json(ctx):
        emit_json(out)
    else:
        rows = result.rows
        click.echo(f"{path} restored into {mask_url(url)} ({result.seconds:.1f} s): "
                   f"{rows.get('transactions', 0)} transactions, {rows.get('tokens', 0)} tokens, "
                   f"{rows.get('vending_keys', 0)} vending keys, {rows.get('audit_log', 0)} "
                   "audit entries")
        if verify:
            a = out["audit"]
            click.echo(f"audit verify: {'OK' if ok else 'BROKEN'}" + "".join(
                f"\n  {p}" for p in a["problems"][:20]))  # type: ignore[index]
        click.echo(f"note: {NOT_IN_BACKUP}; start the server with the same --kek-file / "
                   "security module as before")
    if not ok:
        raise SystemExit(7)
