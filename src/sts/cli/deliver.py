"""`sts deliver`: token delivery from the command line.

  sts deliver run      the dispatcher as its own process (scale-out; `sts serve` runs one too)
  sts deliver list     jobs, e.g. --status rejected (the operator's "paid but no token" list)
  sts deliver show ID  one purchase's delivery, per channel
  sts deliver resend ID --channel sms [--to +27...]   same tokens again, audited

The shared options (--db, --kek-file, --sta-tables, --json, the security module's) go before
or after the subcommand (`sts.cli.vending.VendingGroup`).  `sts fleet ami`, `sts admin meter
export-sim` and the options of `sts serve` are in `sts.cli.delivery_parts`.  Heavy imports
happen inside the commands.
"""

from __future__ import annotations

import signal
import socket
import threading
from typing import Any

import click

from sts.cli.common import emit_json, mask_url
from sts.cli.context import VendingGroup, say, settings_of, wants_json
from sts.cli.delivery_parts import CLI_ACTOR, deliver_options, start_dispatcher


def _db(ctx: click.Context) -> Any:
    """The database (migrated), closed when the command ends."""
    from sts.vending.storage.database import Database, migrate

    db = Database(settings_of(ctx).db_url)
    ctx.call_on_close(db.dispose)
    migrate(db)
    return db


@click.group(cls=VendingGroup, context_settings={"auto_envvar_prefix": "STS_DELIVER"})
@click.pass_context
def deliver(ctx: click.Context) -> None:
    """Token delivery: the dispatcher, delivery status, resend.

    The database options (--db, ...) and --json go before or after the subcommand.
    """
    ctx.ensure_object(dict)


@deliver.command("run")
@deliver_options
@click.pass_context
def deliver_run(ctx: click.Context, ami_broker: str | None, delivery_config: str | None,
                ami_client_id: str | None) -> None:
    """Run the dispatcher until stopped (SIGINT/SIGTERM).  Several may run at once, each
    with its own --ami-client-id; run `sts serve --no-deliver` beside them if you like."""
    db_url = settings_of(ctx).db_url
    _db(ctx)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # not `sts serve`'s default id: both may run at once
    d = start_dispatcher(db_url, ami_broker, delivery_config,
                         ami_client_id or f"sts-deliver-{socket.gethostname()}")
    broker = d.config.ami.broker
    click.echo(f"delivering from {mask_url(db_url)}"
               + (f", AMI via {mask_url(broker)}" if broker else ""), err=True)
    try:
        while not stop.wait(0.5):
            d.watch()  # (the dispatcher's loops watch each other; this watches both)
    except KeyboardInterrupt:
        pass
    finally:
        d.stop()


def _print(ctx: click.Context, items: list[dict[str, Any]]) -> None:
    if wants_json(ctx):
        for item in items:
            emit_json(item)
        return
    for d in items:
        result = d["meter_result"].get("display", "") if d.get("meter_result") else ""
        extra = d.get("reason") or result
        who = d.get("to") or d.get("meter", "")
        head = f"{d.get('request_id', '')} " if "request_id" in d else ""
        click.echo(f"{d['id']:>7} {head}{d['channel']:5} {who:20} {d['status']:9} "
                   f"attempts={d['attempts']} {d['updated_at']} {extra}".rstrip())


@deliver.command("list")
@click.option("--status", default=None,
              help="pending, sent, delivered, accepted, rejected, failed")
@click.option("--channel", default=None, help="sms, email or ami")
@click.option("--meter", default=None, help="the meter number or PAN")
@click.option("--purchase-id", default=None, help="one purchase (or engineering issue)")
@click.option("--after-id", default=0, type=int, help="page on: the last id seen")
@click.option("--limit", default=100, type=int, show_default=True)
@click.pass_context
def deliver_list(ctx: click.Context, status: str | None, channel: str | None,
                 meter: str | None, purchase_id: str | None, after_id: int,
                 limit: int) -> None:
    """Delivery jobs, oldest first (JSON Lines with --json)."""
    from sts.vending import outbox

    db = _db(ctx)
    with db.read() as conn:
        items = outbox.list_deliveries(conn, status=status, channel=channel, meter=meter,
                                       request_id=purchase_id, after_id=after_id, limit=limit)
    _print(ctx, items)


@deliver.command("show")
@click.argument("purchase_id")
@click.pass_context
def deliver_show(ctx: click.Context, purchase_id: str) -> None:
    """The delivery of one purchase (or engineering issue), per channel."""
    from sts.errors import UnknownRecord
    from sts.vending import outbox

    db = _db(ctx)
    with db.read() as conn:
        items = outbox.for_request(conn, purchase_id)
    if not items:
        raise UnknownRecord(f"no delivery for {purchase_id}", field="purchase_id")
    if wants_json(ctx):
        emit_json({"purchase_id": purchase_id, "delivery": items})
    else:
        _print(ctx, items)


@deliver.command("resend")
@click.argument("purchase_id")
@click.option("--channel", required=True, type=click.Choice(["sms", "email", "ami"]))
@click.option("--to", default=None, help="default: the channel's last recipient")
@click.option("--lang", default=None, help="message language, e.g. en, af")
@click.pass_context
def deliver_resend(ctx: click.Context, purchase_id: str, channel: str, to: str | None,
                   lang: str | None) -> None:
    """Send a purchase's tokens again to a channel (a new job; audited)."""
    from sts.vending import outbox
    from sts.vending.clock import utc, wall_clock

    db = _db(ctx)
    with db.begin() as conn:
        out = outbox.resend(db, conn, purchase_id, channel, to, lang, actor=CLI_ACTOR,
                            vendor_id=None, now=utc(wall_clock()))
    say(ctx, f"delivery {out['id']} queued: {channel} {out.get('to', '')}".rstrip(), out)
