"""`sts admin xmlvend`: the vending client systems that sell over XMLVend (/xmlvend) and their
operators.  The shared options (--db, --kek-file, --json) go before or after the subcommand,
as everywhere under `sts admin`."""

from __future__ import annotations

import click

from sts.cli.common import cert_choice, certificate_options, emit_json
from sts.cli.context import VendingGroup, open_vending, say, wants_json


@click.group("xmlvend", cls=VendingGroup)
def xmlvend() -> None:
    """XMLVend 2.1 clients (clientID, vendor, output profile) and operators (argon2)."""


@xmlvend.group("client", cls=VendingGroup)
def client() -> None:
    """Vending client systems (identified by their clientID)."""


@client.command("add")
@click.argument("client_id")
@click.option("--vendor", required=True, help="vendor whose float pays for the sales")
@click.option("--profile", type=click.Choice(["hexing", "conlog"]), default="hexing",
              show_default=True, help="how answers are written (docs/xmlvend.md)")
@click.option("--cert-sha256", default=None,
              help="SHA-256 of the client certificate it must present (hex, colons allowed)")
@click.option("--label", default="")
@click.pass_context
def client_add(ctx: click.Context, client_id: str, vendor: str, profile: str,
               cert_sha256: str | None, label: str) -> None:
    """Register a client system by its clientID (an EAN, or the text it sends)."""
    from sts.vending.access import vend_clients

    svc, reg = open_vending(ctx)
    vend_clients.add_client(svc.db, client_id=client_id, vendor=vendor, profile=profile,
                            cert_sha256=cert_sha256, label=label, actor=reg.actor)
    say(ctx, f"client {client_id} sells for {vendor} ({profile})",
         {"client_id": client_id, "vendor": vendor, "profile": profile})


@client.command("cert")
@click.argument("client_id")
@certificate_options
@click.pass_context
def client_cert(ctx: click.Context, client_id: str, cert_file: str | None,
                cert_sha256: str | None, clear: bool) -> None:
    """Bind a client to the TLS client certificate it must present (mutual TLS on `sts serve
    --tls-client-ca`, or a verifying proxy's header)."""
    from sts.vending.access import vend_clients

    cert = cert_choice(cert_file, cert_sha256, clear)
    svc, reg = open_vending(ctx)
    vend_clients.set_certificate(svc.db, client_id, cert, actor=reg.actor)
    say(ctx, f"{client_id}: {'certificate ' + cert if cert else 'no certificate'}",
        {"client_id": client_id, "cert_sha256": cert})


@client.command("list")
@click.pass_context
def client_list(ctx: click.Context) -> None:
    """Clients and their operators (never passwords); JSON Lines with --json."""
    from sts.vending.access import vend_clients

    svc, _ = open_vending(ctx)
    for r in vend_clients.list_clients(svc.db):
        if wants_json(ctx):
            emit_json(r)
            continue
        state = "revoked" if r["revoked_at"] else "active"
        ops = ", ".join(f"{o['op_name']}({o['role']}{', disabled' if o['disabled'] else ''})"
                        for o in r["operators"])
        click.echo(f"{r['client_id']:16} {r['vendor']:20} {r['profile']:7} {state:8} {ops}")


@client.command("revoke")
@click.argument("client_id")
@click.pass_context
def client_revoke(ctx: click.Context, client_id: str) -> None:
    """Revoke a client: its next request answers ClientIDAuthorisationEx."""
    from sts.vending.access import vend_clients

    svc, reg = open_vending(ctx)
    vend_clients.revoke_client(svc.db, client_id, actor=reg.actor)
    say(ctx, f"revoked {client_id}", {"client_id": client_id, "revoked": True})


@xmlvend.group("operator", cls=VendingGroup)
def operator() -> None:
    """Operators of a client (authCred opName and password)."""


@operator.command("add")
@click.argument("client_id")
@click.argument("op_name")
@click.option("--role", type=click.Choice(["vendor", "supervisor", "engineer"]),
              default="vendor", show_default=True,
              help="vendor/supervisor sell; engineer issues engineering tokens")
@click.pass_context
def operator_add(ctx: click.Context, client_id: str, op_name: str, role: str) -> None:
    """Add an operator; prints its password (the only time it is shown)."""
    from sts.vending.access import vend_clients

    svc, reg = open_vending(ctx)
    password = vend_clients.add_operator(svc.db, client_id=client_id, op_name=op_name,
                                         role=role, actor=reg.actor)
    say(ctx, f"{client_id}/{op_name}: {password}",
         {"client_id": client_id, "operator": op_name, "role": role, "password": password})


@operator.command("password")
@click.argument("client_id")
@click.argument("op_name")
@click.pass_context
def operator_password(ctx: click.Context, client_id: str, op_name: str) -> None:
    """Give an operator a new password; prints it once."""
    from sts.vending.access import vend_clients

    svc, reg = open_vending(ctx)
    password = vend_clients.set_password(svc.db, client_id=client_id, op_name=op_name,
                                         actor=reg.actor)
    say(ctx, f"{client_id}/{op_name}: {password}",
         {"client_id": client_id, "operator": op_name, "password": password})


@operator.command("disable")
@click.argument("client_id")
@click.argument("op_name")
@click.pass_context
def operator_disable(ctx: click.Context, client_id: str, op_name: str) -> None:
    """Disable an operator: its next request answers RequestAuthorisationEx."""
    from sts.vending.access import vend_clients

    svc, reg = open_vending(ctx)
    vend_clients.disable_operator(svc.db, client_id=client_id, op_name=op_name,
                                  actor=reg.actor)
    say(ctx, f"disabled {client_id}/{op_name}",
         {"client_id": client_id, "operator": op_name, "disabled": True})
