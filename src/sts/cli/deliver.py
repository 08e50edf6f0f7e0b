"""Token delivery commands:

  sts deliver run      the dispatcher as its own process (scale-out; `sts serve` runs one too)
  sts deliver list     jobs, e.g. --status rejected (the operator's "paid but no token" list)
  sts deliver show ID  one purchase's delivery, per channel
  sts deliver resend ID --channel sms [--to +27...]   same tokens again, audited
  sts fleet ami        virtual AMI meters on a broker (registered on `sts fleet`)
  sts admin meter export-sim / ami   (registered on `sts admin meter`)

Heavy imports happen inside the commands.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import TYPE_CHECKING, Any

import click

from sts.cli.common import emit_json, json_option

if TYPE_CHECKING:
    from sts.delivery.worker import Dispatcher

CLI_ACTOR = f"cli:{os.environ.get('USER', '?')}"


def deliver_options(func: Any) -> Any:
    """What `sts serve` and `sts deliver run` take to deliver tokens."""
    func = click.option("--ami-broker", envvar="STS_AMI_BROKER", default=None,
                        help="MQTT broker for AMI push, mqtt://HOST:PORT [env STS_AMI_BROKER]")(
        func)
    func = click.option("--ami-client-id", envvar="STS_AMI_CLIENT_ID", default=None,
                        help="MQTT client id of this dispatcher (its persistent session); "
                        "each dispatcher needs its own [env STS_AMI_CLIENT_ID]")(func)
    func = click.option("--delivery-config", envvar="STS_DELIVERY_CONFIG", default=None,
                        type=click.Path(dir_okay=False),
                        help="delivery settings file (TOML): SMS gateway, SMTP, retries "
                        "[env STS_DELIVERY_CONFIG]")(func)
    return func


def start_dispatcher(db_url: str, ami_broker: str | None, delivery_config: str | None,
                     ami_client_id: str | None = None) -> Dispatcher:
    """A running dispatcher on its own database connections (off the sales' path)."""
    from sts.delivery.config import DeliveryConfig
    from sts.delivery.worker import Dispatcher
    from sts.vending.db import Database

    cfg = DeliveryConfig.load(delivery_config, ami_broker=ami_broker)
    if ami_client_id:
        cfg.ami.client_id = ami_client_id
    d = Dispatcher.from_config(Database(db_url, pool_size=4), cfg)
    d.start()
    return d


def _db(db_url: str) -> Any:
    from sts.vending.db import Database, migrate

    db = Database(db_url)
    migrate(db)
    return db


db_option = click.option("--db", "db_url", envvar="STS_DB_URL", default="sts-vending.sqlite3",
                         show_default=True, help="database [env STS_DB_URL]")


@click.group()
def deliver() -> None:
    """Token delivery: the dispatcher, delivery status, resend."""


@deliver.command("run")
@db_option
@deliver_options
def deliver_run(db_url: str, ami_broker: str | None, delivery_config: str | None,
                ami_client_id: str | None) -> None:
    """Run the dispatcher until stopped (SIGINT/SIGTERM).  Several may run at once, each
    with its own --ami-client-id; run `sts serve --no-deliver` beside them if you like."""
    from sts.vending.db import normalise_url

    db_url = normalise_url(db_url)
    _db(db_url).dispose()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # not `sts serve`'s default id: both may run at once
    d = start_dispatcher(db_url, ami_broker, delivery_config,
                         ami_client_id or f"sts-deliver-{socket.gethostname()}")
    click.echo(f"delivering from {db_url}" + (f", AMI via {ami_broker}" if ami_broker else ""),
               err=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        d.stop()


def _print(items: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for item in items:
            emit_json(item)
        return
    for d in items:
        result = d.get("meter_result", {}).get("display", "") if d.get("meter_result") else ""
        extra = d.get("reason") or result
        who = d.get("to") or d.get("meter", "")
        head = f"{d.get('request_id', '')} " if "request_id" in d else ""
        click.echo(f"{d['id']:>7} {head}{d['channel']:5} {who:20} {d['status']:9} "
                   f"attempts={d['attempts']} {d['updated_at']} {extra}".rstrip())


@deliver.command("list")
@db_option
@click.option("--status", default=None, help="pending, sent, delivered, accepted, rejected, failed")
@click.option("--channel", default=None)
@click.option("--meter", default=None)
@click.option("--after-id", default=0, type=int)
@click.option("--limit", default=100, type=int, show_default=True)
@json_option
def deliver_list(db_url: str, status: str | None, channel: str | None, meter: str | None,
                 after_id: int, limit: int, as_json: bool) -> None:
    """Delivery jobs, oldest first (JSON Lines with --json)."""
    from sts.delivery import outbox

    db = _db(db_url)
    with db.read() as conn:
        items = outbox.list_deliveries(conn, status=status, channel=channel, meter=meter,
                                       after_id=after_id, limit=limit)
    _print(items, as_json)


@deliver.command("show")
@click.argument("purchase_id")
@db_option
@json_option
def deliver_show(purchase_id: str, db_url: str, as_json: bool) -> None:
    """The delivery of one purchase (or engineering issue), per channel."""
    from sts.delivery import outbox
    from sts.errors import UnknownRecord

    db = _db(db_url)
    with db.read() as conn:
        items = outbox.for_request(conn, purchase_id)
    if not items:
        raise UnknownRecord(f"no delivery for {purchase_id}", field="purchase_id")
    if as_json:
        emit_json({"purchase_id": purchase_id, "delivery": items})
    else:
        _print(items, False)


@deliver.command("resend")
@click.argument("purchase_id")
@click.option("--channel", required=True, type=click.Choice(["sms", "email", "ami"]))
@click.option("--to", default=None, help="default: the channel's last recipient")
@click.option("--lang", default=None)
@db_option
@json_option
def deliver_resend(purchase_id: str, channel: str, to: str | None, lang: str | None,
                   db_url: str, as_json: bool) -> None:
    """Send a purchase's tokens again to a channel (a new job; audited)."""
    from datetime import datetime

    from sts.delivery import outbox

    db = _db(db_url)
    with db.begin() as conn:
        out = outbox.resend(db, conn, purchase_id, channel, to, lang, actor=CLI_ACTOR,
                            vendor_id=None, now=datetime.now())
    if as_json:
        emit_json(out)
    else:
        click.echo(f"delivery {out['id']} queued: {channel} {out.get('to', '')}".rstrip())


# --- sts admin meter export-sim / ami (added to `sts admin meter`) -------------------------------

def _own_db_options(func: Any) -> Any:
    """--db / --kek-file / --sta-tables after the subcommand too (they override `sts admin`'s)."""
    func = click.option("--db", "own_db", default=None, help="database (default: sts admin's)")(
        func)
    func = click.option("--kek-file", "own_kek", default=None, help="key-encryption key file")(
        func)
    return click.option("--sta-tables", "own_tables", default=None,
                        help="production STA table file")(func)


def _admin_service(ctx: click.Context, db: str | None, kek: str | None,
                   tables: str | None) -> Any:
    from sts.vending.config import Settings, open_service

    base = ctx.obj["settings"]
    settings = base if db is None and kek is None and tables is None else Settings(
        db_url=db or base.db_url, kek_file=kek or (None if db else base.kek_file),
        sta_tables=tables or base.sta_tables)
    return open_service(settings, run_migrations=True, create_kek=True)


@click.command("export-sim")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="meter file to write (JSON Lines, owner-readable only)")
@click.argument("pans", nargs=-1)
@_own_db_options
@click.pass_context
def export_sim_cmd(ctx: click.Context, out_path: str, pans: tuple[str, ...], own_db: str | None,
                   own_kek: str | None, own_tables: str | None) -> None:
    """Write the meter file for `sts fleet ami` (decoder keys of PANS, or of all meters).
    Administrators only; audited."""
    from datetime import datetime

    from sts.delivery.sim import export_sim, write_jsonl

    svc = _admin_service(ctx, own_db, own_kek, own_tables)
    objs = export_sim(svc.db, svc.sm, list(pans), actor=CLI_ACTOR, now=datetime.now())
    write_jsonl(out_path, objs)
    click.echo(f"{len(objs)} meters written to {out_path}", err=True)


@click.command("ami")
@click.argument("pan")
@click.option("--on/--off", "on", default=True, show_default=True)
@_own_db_options
@click.pass_context
def meter_ami_cmd(ctx: click.Context, pan: str, on: bool, own_db: str | None,
                  own_kek: str | None, own_tables: str | None) -> None:
    """Mark a meter AMI-connected (sales are pushed to it over MQTT) or not."""
    from sts.vending.registry import Registry

    svc = _admin_service(ctx, own_db, own_kek, own_tables)
    Registry(svc.db, svc.sm, actor=CLI_ACTOR).set_meter_ami(pan, on)
    click.echo(f"meter {pan} AMI {'on' if on else 'off'}")


def register_admin(group: click.Group) -> None:
    group.add_command(export_sim_cmd)
    group.add_command(meter_ami_cmd)


# --- sts fleet ami (added to `sts fleet`) ---------------------------------------------------------

@click.command("ami")
@click.option("--broker", required=True, envvar="STS_AMI_BROKER",
              help="mqtt://HOST:PORT [env STS_AMI_BROKER]")
@click.option("--meters", "meters_file", required=True, type=click.Path(dir_okay=False),
              help="meter file from `sts admin meter export-sim`")
@click.option("--state-dir", default="ami-meters", show_default=True,
              help="per-meter state files (resumed on the next run)")
@click.option("--sta-tables", envvar="STS_STA_TABLES", default=None)
@click.option("--only", multiple=True, help="run only these PANs (repeatable)")
@json_option
def fleet_ami(broker: str, meters_file: str, state_dir: str, sta_tables: str | None,
              only: tuple[str, ...], as_json: bool) -> None:
    """Run virtual meters as AMI endpoints: each subscribes to its tokens topic, enters the
    tokens and publishes its status.  Runs until stopped; one line per message handled."""
    from sts.delivery.ami_fleet import AmiFleet, raise_fd_limit
    from sts.delivery.config import parse_mqtt_url

    host, port, user, password = parse_mqtt_url(broker)

    def report(info: dict[str, Any]) -> None:
        if as_json:
            emit_json(info)
            return
        res = " / ".join(r.get("display", "") for r in info.get("results", []))
        dup = " (duplicate)" if info.get("duplicate") else ""
        click.echo(f"{info['meter']} {info.get('purchase_id') or info['id']}: {res}{dup}")

    fleet = AmiFleet.load(host, port, meters_file, state_dir=state_dir, tables_file=sta_tables,
                          only=set(only) or None, username=user, password=password,
                          report=report)
    raise_fd_limit(len(fleet.meters) + 256)
    click.echo(f"{len(fleet.meters)} AMI meters on {host}:{port}", err=True)
    signal.signal(signal.SIGTERM, lambda *_: fleet.stop())
    fleet.start()
    try:
        while fleet.alive():
            threading.Event().wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
