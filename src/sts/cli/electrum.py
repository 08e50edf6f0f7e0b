"""`sts admin electrum`: HTTP Basic credentials for switches on /prepaidutility/v3, and the
journal of what the switches sent.  The shared options (--db, --kek-file, --json) go before or
after the subcommand, as everywhere under `sts admin`."""

from __future__ import annotations

import click

from sts.cli.common import cert_choice, certificate_options, emit_json
from sts.cli.context import VendingGroup, open_vending, say, wants_json


@click.group("electrum", cls=VendingGroup)
def electrum() -> None:
    """HTTP Basic credentials for the Electrum interface (stored hashed; shown once)."""


@electrum.command("add")
@click.option("--vendor", required=True, help="vendor whose float pays for the sales")
@click.option("--username", default=None, help="default: derived from the vendor name")
@click.option("--role", type=click.Choice(["vendor", "supervisor"]), default="vendor",
              show_default=True)
@click.option("--institution", "institution_id", default=None,
              help="only accept requests whose originator.institution.id is this")
@click.option("--label", default="")
@click.pass_context
def electrum_add(ctx: click.Context, vendor: str, username: str | None, role: str,
                 institution_id: str | None, label: str) -> None:
    """Issue a username and password (the only time the password is shown)."""
    from sts.vending.access import credentials

    svc, reg = open_vending(ctx)
    user, password = credentials.issue(svc.db, vendor=vendor, username=username, role=role,
                                       institution_id=institution_id, label=label,
                                       actor=reg.actor)
    say(ctx, f"{user}:{password}",
         {"username": user, "password": password, "vendor": vendor, "role": role})


@electrum.command("revoke")
@click.argument("username")
@click.pass_context
def electrum_revoke(ctx: click.Context, username: str) -> None:
    """Revoke a credential: its next request answers 401."""
    from sts.vending.access import credentials

    svc, reg = open_vending(ctx)
    credentials.revoke(svc.db, username, actor=reg.actor)
    say(ctx, f"revoked {username}", {"username": username, "revoked": True})


@electrum.command("cert")
@click.argument("username")
@certificate_options
@click.pass_context
def electrum_cert(ctx: click.Context, username: str, cert_file: str | None,
                  cert_sha256: str | None, clear: bool) -> None:
    """Bind a credential to its switch's TLS client certificate: it must then come over mutual
    TLS with it (`sts serve --tls-client-ca`), and that certificate alone authenticates it."""
    from sts.vending.access import credentials

    cert = cert_choice(cert_file, cert_sha256, clear)
    svc, reg = open_vending(ctx)
    credentials.bind_certificate(svc.db, username, cert, actor=reg.actor)
    say(ctx, f"{username}: {'certificate ' + cert if cert else 'no certificate'}",
        {"username": username, "cert_sha256": cert})


@electrum.command("list")
@click.pass_context
def electrum_list(ctx: click.Context) -> None:
    """Credentials (never the passwords); JSON Lines with --json."""
    from sts.vending.access import credentials

    svc, _ = open_vending(ctx)
    with svc.db.read() as conn:
        rows = credentials.list_credentials(conn)
    if wants_json(ctx):
        for r in rows:
            emit_json(r)
        return
    for r in rows:
        state = "revoked" if r["revoked_at"] else "active"
        click.echo(f"{r['username']:30} {r['vendor'] or '-':20} {r['role']:10} {state}")


@electrum.command("journal")
@click.option("--id", "message_id", default=None, help="one request or advice id (and its "
              "advices)")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def electrum_journal(ctx: click.Context, message_id: str | None, limit: int) -> None:
    """Every request and advice received, with its outcome (newest last); JSON Lines with
    --json."""
    from sts.vending import messages

    svc, _ = open_vending(ctx)
    for row in messages.journal_entries(svc.db, message_id, limit=limit):
        if wants_json(ctx):
            emit_json(row)
        else:
            click.echo(f"{row['at']} {row['operation']:28} {row['message_id']:36} "
                       f"{row['http_status']} {row['error_type'] or ''}")
