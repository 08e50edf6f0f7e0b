"""The token delivery pieces other command groups carry:

  sts serve ... --ami-broker URL --delivery-config FILE [--no-deliver]   (the dispatcher)
  sts admin meter export-sim --out FILE [PAN ...]    the meter file for `sts fleet ami`
  sts admin meter ami PAN --on/--off                 mark a meter AMI-connected
  sts fleet ami --broker URL --meters FILE           virtual AMI meters on a broker

`sts deliver` itself (run, list, show, resend) is in `sts.cli.deliver`.  The shared options come from
`sts.cli.context`; heavy imports happen inside the commands.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import TYPE_CHECKING, Any

import click

from sts.cli.common import emit_json, json_option, mask_url, tables_option

if TYPE_CHECKING:
    from sts.delivery.worker import Dispatcher

CLI_ACTOR = f"cli:{os.environ.get('USER', '?')}"


def deliver_options(func: Any) -> Any:
    """What `sts serve` and `sts deliver run` take to deliver tokens."""
    func = click.option("--ami-broker", envvar="STS_AMI_BROKER", default=None,
                        help="MQTT broker for AMI push, mqtt://HOST:PORT or (TLS) "
                        "mqtts://HOST:8883?ca_file=...&cert_file=...&key_file=... "
                        "[env STS_AMI_BROKER]")(func)
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
    from sts.vending.storage.database import Database

    cfg = DeliveryConfig.load(delivery_config, ami_broker=ami_broker)
    if ami_client_id:
        cfg.ami.client_id = ami_client_id
    d = Dispatcher.from_config(Database(db_url, pool_size=4), cfg)
    d.start()
    return d


# --- sts admin meter export-sim / ami (added to `sts admin meter`) -------------------------------


@click.command("export-sim")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="meter file to write (JSON Lines, owner-readable only)")
@click.argument("pans", nargs=-1)
@click.pass_context
def export_sim_cmd(ctx: click.Context, out_path: str, pans: tuple[str, ...]) -> None:
    """Write the meter file for `sts fleet ami` (decoder keys of PANS, or of all meters).
    Administrators only; audited."""
    from sts.cli.context import open_vending, say
    from sts.delivery.sim import export_sim, write_jsonl

    svc, _ = open_vending(ctx)
    objs = export_sim(svc.db, svc.sm, list(pans), actor=CLI_ACTOR, now=svc.now())
    write_jsonl(out_path, objs)
    say(ctx, f"{len(objs)} meters written to {out_path}",
         {"meters": len(objs), "out": out_path})


@click.command("ami")
@click.argument("pan")
@click.option("--on/--off", "on", default=True, show_default=True)
@click.pass_context
def meter_ami_cmd(ctx: click.Context, pan: str, on: bool) -> None:
    """Mark a meter AMI-connected (its sales are pushed to it over MQTT) or not."""
    from sts.cli.context import open_vending, say

    _, reg = open_vending(ctx)
    reg.set_meter_ami(pan, on)
    say(ctx, f"meter {pan} AMI {'on' if on else 'off'}", {"meter": pan, "ami": on})


def add_delivery_admin_commands(group: click.Group) -> list[click.Command]:
    """Register `export-sim` and `ami` into `sts admin meter`; returns them (the caller adds
    the shared options)."""
    commands: list[click.Command] = [export_sim_cmd, meter_ami_cmd]
    for command in commands:
        group.add_command(command)
    return commands


# --- sts fleet ami (added to `sts fleet`) ---------------------------------------------------------


@click.command("ami")
@click.option("--broker", required=True, envvar="STS_AMI_BROKER",
              help="mqtt://[user:password@]HOST:PORT, or mqtts://...?ca_file=&cert_file=&key_file= "
              "(TLS; client certificate for mutual TLS) [env STS_AMI_BROKER]")
@click.option("--meters", "meters_file", required=True, type=click.Path(dir_okay=False),
              help="meter file from `sts admin meter export-sim`")
@click.option("--state-dir", default="ami-meters", show_default=True,
              help="per-meter state files, owner-only (resumed on the next run)")
@click.option("--passwords", "passwords_file", default=None, type=click.Path(dir_okay=False),
              help="per-meter broker accounts: PAN:password lines, owner-only (each meter "
              "logs in as its PAN, as deploy/mosquitto sets the broker up)")
@tables_option
@click.option("--only", multiple=True, help="run only these PANs (repeatable)")
@json_option
def fleet_ami(broker: str, meters_file: str, state_dir: str, passwords_file: str | None,
              sta_tables: str | None, only: tuple[str, ...], as_json: bool) -> None:
    """Run virtual meters as AMI endpoints: each subscribes to its tokens topic, enters the
    tokens and publishes its status.  Runs until stopped; one line per message handled."""
    from sts.delivery.ami_fleet import AmiFleet, raise_fd_limit, read_passwords
    from sts.delivery.config import parse_mqtt_url

    endpoint = parse_mqtt_url(broker)
    passwords = read_passwords(passwords_file) if passwords_file else None

    def report(info: dict[str, Any]) -> None:
        if as_json:
            emit_json(info)
            return
        res = " / ".join(r.get("display", "") for r in info.get("results", []))
        dup = " (duplicate)" if info.get("duplicate") else ""
        click.echo(f"{info['meter']} {info.get('purchase_id') or info['id']}: {res}{dup}")

    fleet = AmiFleet.load(endpoint, meters_file, state_dir=state_dir, tables_file=sta_tables,
                          only=set(only) or None, passwords=passwords, report=report)
    raise_fd_limit(len(fleet.meters) + 256)
    click.echo(f"{len(fleet.meters)} AMI meters on {mask_url(broker)}", err=True)
    signal.signal(signal.SIGTERM, lambda *_: fleet.stop())
    fleet.start()
    try:
        while fleet.alive():
            threading.Event().wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
