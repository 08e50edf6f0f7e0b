"""`sts serve`, `sts admin`, `sts campaign`, `sts audit`: the vending server's commands.

Heavy imports (FastAPI, SQLAlchemy, uvicorn) happen inside the commands, so `sts --help`
stays fast.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sts.cli.common import emit_json, mask_url
from sts.cli.context import (
    VendingCommand,
    VendingGroup,
    add_shared,
    open_vending,
    parse_time,
    say,
    settings_of,
    wants_json,
)
from sts.cli.delivery_parts import add_delivery_admin_commands, deliver_options, start_dispatcher
from sts.cli.keys import add_key_commands
from sts.cli.stopping import DEFAULT_GRACEFUL_TIMEOUT, StopRequested, exit_cleanly_on_sigterm
from sts.cli.tls import tls_options

if TYPE_CHECKING:
    from sts.vending.config import Settings
    from sts.vending.service import VendingService

# --- serve -------------------------------------------------------------------------------------


@click.command(cls=VendingCommand, context_settings={"auto_envvar_prefix": "STS_SERVE"})
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8062, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="server processes (all share the database)")
@click.option("--demo", is_flag=True,
              help="fill an empty database with demo data first, and start the mobile-money "
                   "sandbox stand-ins (Daraja, MoMo, an SMS inbox) on loopback")
@click.option("--lookup-limit", default=600, show_default=True, type=int,
              help="meter lookups and trials per caller per minute (kept in the database)")
@click.option("--signin-limit", default=None, type=click.IntRange(min=1),
              help="web sign-in attempts per client address per minute [default: 20]; raise it "
                   "when many tills share one address (a shop behind NAT)")
@click.option("--log-level", default="warning", show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="json: one JSON object per line, and one line per request (request id, "
                   "face, caller, purchase, outcome, duration)")
@click.option("--metrics-token-file", default=None, type=click.Path(dir_okay=False),
              help="file (mode 0600) holding the /metrics scrape token; admin and auditor API "
                   "keys may scrape too [or STS_METRICS_TOKEN_FILE, STS_METRICS_TOKEN]")
@click.option("--forwarded-allow-ips", default=None, metavar="ADDRESSES",
              help="reverse proxies (comma-separated addresses or networks) whose "
                   "X-Forwarded-For/-Proto name the client; off by default: the peer's address "
                   "is the client's")
@deliver_options  # token delivery (sts.cli.delivery_parts): --ami-broker, --delivery-config
@click.option("--no-deliver", is_flag=True,
              help="no delivery dispatcher here (a separate `sts deliver run` does it)")
@tls_options  # sts.cli.tls: --tls-cert, --tls-key, --tls-client-ca
@click.option("--graceful-timeout", default=DEFAULT_GRACEFUL_TIMEOUT, show_default=True,
              type=click.IntRange(min=1),
              help="seconds the requests in flight get to finish after SIGTERM")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, demo: bool, lookup_limit: int,
          signin_limit: int | None, log_level: str, log_format: str, metrics_token_file: str | None,
          forwarded_allow_ips: str | None,
          ami_broker: str | None, delivery_config: str | None, ami_client_id: str | None,
          no_deliver: bool, tls_cert: str | None, tls_key: str | None,
          tls_client_ca: str | None, graceful_timeout: int) -> None:
    """Run the vending server: creates and migrates the database, then serves HTTP (HTTPS
    with --tls-cert).

    SIGTERM stops it without losing a sale (sts.cli.stopping): no new connection is taken,
    the requests in flight finish (at most --graceful-timeout), exit code 0."""
    from sts.cli.observability import metrics_dir, remove_metrics_dir

    made_dir = metrics_dir()  # before prometheus-client is imported (sts.server.metrics)
    ctx.call_on_close(lambda: remove_metrics_dir(made_dir))
    import uvicorn

    exit_cleanly_on_sigterm()

    from sts.crypto.native import describe as core_status
    from sts.server.tls import TlsOptions
    from sts.vending.config import open_service
    from sts.vending.registry.admin import Registry, fill_demo
    from sts.vending.registry.operators import demo_passwords

    settings = settings_of(ctx, lookup_limit=lookup_limit,
                           forwarded_allow_ips=forwarded_allow_ips,
                           **({"signin_limit": signin_limit} if signin_limit else {}))
    tls = TlsOptions(tls_cert, tls_key, tls_client_ca)
    tls.check()
    svc = open_service(settings, run_migrations=True, create_kek=True)
    sandbox = None
    if demo:  # the mobile-money stand-ins on loopback, so /buy works with no account anywhere
        from sts.payments.sandbox import demo as sandbox_demo

        local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        sandbox = sandbox_demo.start(f"{'https' if tls_cert else 'http'}://{local}:{port}")
        reg = Registry(svc.db, svc.sm, actor="serve --demo")
        if reg.is_empty():
            info = fill_demo(reg, production_tables=bool(settings.sta_tables))
            info["operators"] = demo_passwords(reg)  # web sign-in, one account per role
            info["xmlvend"]["url"] = f"http://{host}:{port}/xmlvend"
            info["mobile_money"] = demo_mobile_money(reg, f"http://{host}:{port}")
            info["mobile_money"]["sandbox"] = sandbox.urls
            if wants_json(ctx):
                emit_json(info)
            else:
                _print_demo(info)
        else:
            click.echo("database already has data: demo skipped (API keys are shown only when "
                       "made; a new one: sts admin apikey add vendor --vendor 'Demo Vendor' "
                       f"--db {mask_url(settings.db_url)})", err=True)
    svc.db.dispose()
    os.environ.update(settings.env())
    scheme = "https" if tls.on else "http"
    banner = (f"serving on {scheme}://{host}:{port}: web pages (sign in) at /, API docs at "
              f"/docs, Electrum at /prepaidutility/v3; database {mask_url(settings.db_url)}; "
              f"{core_status()}")
    click.echo(banner if log_format == "text" else json.dumps(
        {"level": "info", "logger": "sts.serve", "message": banner}), err=True)
    app = "sts.server.app:app_from_env"
    # token delivery: one dispatcher in this (supervising) process, off the sales' path
    dispatcher = None if no_deliver else start_dispatcher(settings.db_url, ami_broker,
                                                          delivery_config, ami_client_id)
    if dispatcher is not None and dispatcher.config.ami.broker:  # /readyz checks it
        os.environ["STS_AMI_BROKER"] = dispatcher.config.ami.broker
    from sts.server.logs import log_config
    from sts.server.metrics import ENV_TOKEN_FILE, scrape_token_from_env

    if metrics_token_file:
        os.environ[ENV_TOKEN_FILE] = metrics_token_file  # the workers read it
    scrape_token_from_env()  # a token file others may read, or too short a token: stop here

    logs = log_config(log_format, log_level)  # json: every line JSON, ours replaces uvicorn's
    options = settings.uvicorn_options() | tls.uvicorn_options() | (
        {} if logs is None else {"log_config": logs, "access_log": False})
    if sandbox is not None and sandbox.urls:
        click.echo("mobile-money sandbox on loopback (demo only): pay at "
                   f"http://{host}:{port}/buy; "
                   + "; ".join(f"{k} {v}" for k, v in sorted(sandbox.urls.items())), err=True)
    try:
        if workers <= 1:
            uvicorn.run(app, factory=True, host=host, port=port, log_level=log_level,
                        timeout_graceful_shutdown=graceful_timeout, **options)
            return
        from uvicorn.supervisors import Multiprocess

        config = uvicorn.Config(app, factory=True, host=host, port=port, workers=workers,
                                log_level=log_level, timeout_graceful_shutdown=graceful_timeout,
                                # a worker importing the app on a busy host needs more than
                                # uvicorn's 5 s before it answers the supervisor's ping
                                timeout_worker_healthcheck=60, **options)
        Multiprocess(config, sockets=[_listen(host, port)]).run()
    finally:
        if dispatcher is not None:
            dispatcher.stop()
        if sandbox is not None:
            sandbox.stop()


def _listen(host: str, port: int) -> socket.socket:
    """The workers' shared listening socket, made as asyncio expects a TCP socket to be.

    uvicorn's own (`--workers`) is made without IPPROTO_TCP, so asyncio in the workers does not
    recognise its connections as TCP and leaves Nagle's algorithm on: a response written as
    head and body then waits for the client's delayed ACK, about 40 ms per request.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    sock.set_inheritable(True)
    return sock


# --- admin ------------------------------------------------------------------------------------


@click.group(cls=VendingGroup)
@click.pass_context
def admin(ctx: click.Context) -> None:
    """Manage utilities, SGCs, vending keys, tariffs, meters, vendors, operators, API keys.

    The database options (--db, --kek-file, --sta-tables) and --json go before or after the
    subcommand.
    """
    ctx.ensure_object(dict)


@admin.command("migrate")
@click.option("--check", is_flag=True,
              help="only say what the pending migrations would do (exit 1 if any are pending)")
@click.pass_context
def admin_migrate(ctx: click.Context, check: bool) -> None:
    """Create or upgrade the database schema."""
    if check:
        from sts.cli.migrate_check import migrate_check

        ctx.exit(migrate_check(ctx))
    svc, _ = open_vending(ctx)
    from sts.vending.storage.database import migrate

    rev = migrate(svc.db)
    say(ctx, f"schema at revision {rev}", {"revision": rev})


@admin.command("demo")
@click.option("--meters", "count", default=5, show_default=True, type=int)
@click.pass_context
def admin_demo(ctx: click.Context, count: int) -> None:
    """Fill an empty database with a demo utility; prints the API keys and passwords once."""
    from sts.vending.registry.admin import fill_demo
    from sts.vending.registry.operators import demo_passwords

    _, reg = open_vending(ctx)
    with _progress_bar("demo meters") as step:
        info = fill_demo(reg, production_tables=bool(ctx.obj["settings"].sta_tables),
                         meters_count=count, progress=step)
    info["operators"] = demo_passwords(reg)  # web sign-in, one account per role
    info["mobile_money"] = demo_mobile_money(reg, None)
    if wants_json(ctx):
        emit_json(info)
    else:
        _print_demo(info)


def demo_mobile_money(reg: Any, base: str | None) -> dict[str, str]:
    """The demo's M-Pesa channel vendor, and where its paybill's callbacks and USSD go."""
    from sts.payments.config import MobileMoneySettings
    from sts.vending.registry.admin import add_demo_channel, add_demo_phones

    mm = MobileMoneySettings.from_env()
    add_demo_channel(reg, mm.vendor)
    add_demo_phones(reg)  # "my tokens" sends its one-time code to the number on record
    base = (base or mm.callback_base).rstrip("/")
    return {"shortcode": mm.shortcode, "vendor": mm.vendor,
            "validation_url": f"{base}/pay/c2b/validation",
            "confirmation_url": f"{base}/pay/c2b/confirmation",
            "stk_callback_url": f"{base}/pay/stk/callback",
            "ussd_url": f"{base}/ussd", "buy_url": f"{base}/buy"}


def _print_demo(info: dict[str, Any]) -> None:
    """The demo's API keys and meters as shell lines to paste (the keys are shown only once)."""
    click.echo("# demo data created. The API keys are shown only this once: paste these lines\n"
               "# into the shell you will call the API from (README: 'A purchase').")
    for role, key in info["api_keys"].items():
        click.echo(f"export {role.upper()}_KEY={key}")
    pans = info["meters"]
    more = f" ... ({len(pans)} meters)" if len(pans) > 10 else ""
    click.echo(f"export METER={pans[0]}   # demo meters: {' '.join(pans[:10])}{more}")
    for role, acc in info.get("operators", {}).items():
        click.echo(f"# web sign-in ({role}): {acc['username']} / {acc['password']}")
    if "electrum" in info:
        click.echo(f"# Electrum (HTTP Basic): {info['electrum']['username']} / "
                   f"{info['electrum']['password']}")
    if "xmlvend" in info:
        x = info["xmlvend"]
        click.echo(f"# XMLVend ({x['profile']}): {x['url']} clientID {x['client_id']}, "
                   f"operator {x['operator']} / {x['password']}")
    if "mobile_money" in info:
        mm = info["mobile_money"]
        click.echo(f"# M-Pesa paybill {mm['shortcode']} (vendor {mm['vendor']}): validation "
                   f"{mm['validation_url']}, confirmation {mm['confirmation_url']}, "
                   f"USSD {mm['ussd_url']}")


@admin.command("utility")
@click.argument("name")
@click.option("--address", default="")
@click.option("--vat-reg-num", default="")
@click.option("--currency", default="ZAR")
@click.option("--time-zone", default="UTC", show_default=True,
              help="IANA zone whose local minutes the TIDs count, e.g. Africa/Johannesburg")
@click.option("--locale", default=None,
              help="how money is written and the pages' default language, e.g. en_ZA, en_KE, "
                   "fr_CI (default: the currency's usual locale)")
@click.pass_context
def admin_utility(ctx: click.Context, name: str, address: str, vat_reg_num: str,
                  currency: str, time_zone: str, locale: str | None) -> None:
    """Add a utility."""
    _, reg = open_vending(ctx)
    reg.add_utility(name, address=address, vat_reg_num=vat_reg_num, currency=currency,
                    time_zone=time_zone, locale=locale)
    say(ctx, f"utility {name} added", {"utility": name, "time_zone": time_zone,
                                        "added": True})


@admin.command("utility-locale")
@click.argument("name")
@click.argument("locale")
@click.pass_context
def admin_utility_locale(ctx: click.Context, name: str, locale: str) -> None:
    """Set how a utility's money is written and its pages' language (en_ZA, fr_CI, ...)."""
    _, reg = open_vending(ctx)
    reg.set_locale(name, locale)
    say(ctx, f"utility {name}: locale {locale}", {"utility": name, "locale": locale})


@admin.command("sgc")
@click.argument("sgc")
@click.option("--utility", required=True)
@click.option("--name", default="")
@click.pass_context
def admin_sgc(ctx: click.Context, sgc: str, utility: str, name: str) -> None:
    """Add a supply group (SGC)."""
    _, reg = open_vending(ctx)
    reg.add_sgc(sgc, utility=utility, name=name)
    say(ctx, f"SGC {sgc} added", {"sgc": sgc, "utility": utility, "added": True})


@admin.group("key", cls=VendingGroup)
def admin_key() -> None:
    """Vending keys of supply groups."""


@admin_key.command("add")
@click.argument("sgc")
@click.argument("krn", type=int)
@click.option("--dkga", default=4, show_default=True, type=click.Choice(["2", "4"]))
@click.option("--ea", default=7, show_default=True, type=click.Choice(["7", "11"]))
@click.option("--base-date", default=2014, show_default=True,
              type=click.Choice(["1993", "2014", "2035"]))
@click.option("--key-type", default="VUDK", show_default=True,
              type=click.Choice(["VUDK", "VDDK", "VCDK"]))
@click.option("--table-set", type=click.Choice(["sample", "production"]), default=None,
              help="EA07 tables (default: production if --sta-tables is given, else sample)")
@click.option("--ken", default=255, show_default=True, type=int)
@click.option("--issued-until", default=None, help="no tokens after this time")
@click.option("--kct-until", default=None, help="key change tokens until this time")
@click.option("--credit-limit", default=None, help="money this key may vend")
@click.option("--import-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="import the key from a file holding its hex (never on the command line)")
@click.option("--import-env", default=None, help="import the key from this environment variable")
@click.option("--not-current", is_flag=True, help="do not make it the SGC's current key")
@click.pass_context
def admin_key_add(ctx: click.Context, sgc: str, krn: int, dkga: str, ea: str, base_date: str,
                  key_type: str, table_set: str | None, ken: int, issued_until: str | None,
                  kct_until: str | None, credit_limit: str | None, import_file: str | None,
                  import_env: str | None, not_current: bool) -> None:
    """Generate (CSPRNG) or import a vending key for SGC/KRN; the key is never printed."""
    from sts.errors import InputError

    _, reg = open_vending(ctx)
    raw = None
    if import_file or import_env:
        text = Path(import_file).read_text() if import_file else os.environ.get(import_env or "")
        try:
            raw = bytes.fromhex((text or "").strip())
        except ValueError:
            raise InputError("the imported key must be hex digits", field="key") from None
    reg.add_key(sgc, krn, dkga=int(dkga), ea=int(ea), base_date=int(base_date),
                key_type=key_type, table_set=table_set, ken=ken,
                issued_until=parse_time(issued_until, "issued_until"),
                kct_until=parse_time(kct_until, "kct_until"),
                credit_limit=Decimal(credit_limit) if credit_limit else None, raw=raw,
                make_current=not not_current)
    origin = "imported" if raw else "generated"
    say(ctx, f"key {sgc}/{krn} {origin}", {"sgc": sgc, "krn": krn, "origin": origin,
                                            "current": not not_current})


@admin_key.command("current")
@click.argument("sgc")
@click.argument("krn", type=int)
@click.pass_context
def admin_key_current(ctx: click.Context, sgc: str, krn: int) -> None:
    """Make SGC/KRN the key new tokens are made under (meters follow on their next sale)."""
    _, reg = open_vending(ctx)
    reg.set_current_key(sgc, krn)
    say(ctx, f"current key of {sgc} is KRN {krn}", {"sgc": sgc, "current_krn": krn})


@admin_key.command("list")
@click.option("--check", is_flag=True,
              help="also compute each key's KCV where it lives (proves the module holds it)")
@click.pass_context
def admin_key_list(ctx: click.Context, check: bool) -> None:
    """Key attributes and where each key lives (never the keys); --json: JSON Lines."""
    from sts.vending.registry.keys import list_keys

    svc, reg = open_vending(ctx)
    ctx.call_on_close(svc.sm.close)  # log out of the token when the command ends
    rows = list_keys(reg, check=check)
    if wants_json(ctx):
        for row in rows:
            emit_json(row)
        return
    click.echo(f"{'SGC':8} {'KRN':>3}  {'type':5} {'DKGA':>4} {'EA':>3} {'base':>5} "
               f"{'tables':10} {'KEN':>4}  {'origin':9} {'current':7} location"
               + ("  KCV" if check else ""))
    for r in rows:
        click.echo(f"{r['sgc']:8} {r['krn']:>3}  {r['key_type']:5} {r['dkga']:>4} {r['ea']:>3} "
                   f"{r['base_date']:>5} {r['table_set'] or '-':10} {r['ken']:>4}  "
                   f"{r['origin']:9} {'yes' if r['current'] else '':7} {r['location']}"
                   + (f"  {r.get('kcv') or r.get('error', {}).get('code', '-')}" if check else ""))


for _command in add_key_commands(admin_key):
    add_shared(_command.params)


@admin.command("tariff")
@click.argument("name")
@click.option("--price", default=None, help="flat price per unit excl. VAT")
@click.option("--block", "blocks", multiple=True,
              help="UPTO:PRICE per month, rising; last one '-:PRICE' (open)")
@click.option("--vat", "vat_rate", default="0", show_default=True, help="e.g. 0.15")
@click.option("--fixed-monthly", default="0", show_default=True)
@click.option("--debt-share", default="0", show_default=True, help="share of each purchase")
@click.option("--free-units", default="0", show_default=True, help="free units per month")
@click.option("--min", "min_amount", default="0", show_default=True)
@click.option("--max", "max_amount", default=None)
@click.option("--ti", type=int, default=None, help="tariff index meters on it must carry")
@click.pass_context
def admin_tariff(ctx: click.Context, name: str, price: str | None, blocks: tuple[str, ...],
                 vat_rate: str, fixed_monthly: str, debt_share: str, free_units: str,
                 min_amount: str, max_amount: str | None, ti: int | None) -> None:
    """Add a tariff (flat with --price, or step blocks with --block)."""
    parsed: list[tuple[str | None, str]] | None = None
    if blocks:
        parsed = []
        for b in blocks:
            up, _, p = b.partition(":")
            parsed.append((None if up in ("-", "") else up, p))
    _, reg = open_vending(ctx)
    reg.add_tariff(name, price=price, blocks=parsed, vat_rate=vat_rate,
                   fixed_monthly=fixed_monthly, debt_share=debt_share, free_units=free_units,
                   min_amount=min_amount, max_amount=max_amount, ti=ti)
    say(ctx, f"tariff {name} added", {"tariff": name, "added": True})


@admin.command("customer")
@click.argument("account_no")
@click.argument("name")
@click.option("--address", default="")
@click.option("--phone", default="")
@click.option("--debt", default="0", help="opening debt balance")
@click.pass_context
def admin_customer(ctx: click.Context, account_no: str, name: str, address: str, phone: str,
                   debt: str) -> None:
    """Add a customer."""
    _, reg = open_vending(ctx)
    reg.add_customer(account_no, name, address=address, phone=phone, debt=debt)
    say(ctx, f"customer {account_no} added", {"customer": account_no, "added": True})


@admin.group("meter", cls=VendingGroup)
def admin_meter() -> None:
    """Meters."""


for _command in add_delivery_admin_commands(admin_meter):  # export-sim, ami (token delivery)
    add_shared(_command.params)


@admin_meter.command("add")
@click.argument("pan")
@click.option("--sgc", required=True)
@click.option("--tariff", required=True)
@click.option("--krn", type=int, default=None, help="default: the SGC's current key")
@click.option("--ti", type=int, default=1, show_default=True)
@click.option("--kt", type=int, default=2, show_default=True)
@click.option("--ken", type=int, default=None)
@click.option("--service", default="electricity", show_default=True,
              type=click.Choice(["electricity", "water", "gas", "time"]))
@click.option("--customer", default=None, help="account number")
@click.option("--ami", is_flag=True, help="AMI-connected: sales are pushed to it over MQTT")
@click.pass_context
def admin_meter_add(ctx: click.Context, pan: str, sgc: str, tariff: str, krn: int | None,
                    ti: int, kt: int, ken: int | None, service: str,
                    customer: str | None, ami: bool) -> None:
    """Register a meter (PAN validated)."""
    _, reg = open_vending(ctx)
    reg.add_meter(pan, sgc=sgc, tariff=tariff, krn=krn, ti=ti, kt=kt, ken=ken, service=service,
                  customer=customer, ami=ami)
    say(ctx, f"meter {pan} added", {"meter": pan, "added": True, "ami": ami})


@admin_meter.command("import")
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, allow_dash=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default=None,
              help="default: from the file name (.csv, .jsonl) or its first character")
@click.option("--errors", "errors_path", default=None, type=click.Path(dir_okay=False),
              help="write every rejected line here as JSON Lines")
@click.pass_context
def admin_meter_import(ctx: click.Context, path: str, fmt: str | None,
                       errors_path: str | None) -> None:
    """Register many meters (and their customers) from a CSV or JSON Lines file.

    Columns: meter (printed number or PAN), sgc, krn, ti, kt, ea, dkga, base_date, ken, tariff,
    service, account_no, name, address, phone.  Every row is checked first; one bad row
    imports nothing.  Meters already registered as the file says are left unchanged."""
    from sts.vending.registry.importer import import_file

    svc, reg = open_vending(ctx)
    with _progress_bar("checking rows") as step:
        res = import_file(reg.db, path, actor=reg.actor, at=svc.now(), fmt=fmt,
                          progress=step)
    if errors_path is not None:
        with open(errors_path, "w", encoding="utf-8") as out:
            for r in res.rejected:
                out.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
    if wants_json(ctx):
        emit_json(res.as_dict(limit=None if errors_path is None else 100))
    else:
        click.echo(f"{res.rows} rows: {res.imported} meters imported, {res.unchanged} "
                   f"unchanged, {res.customers_added} customers added, "
                   f"{len(res.rejected)} rejected")
        for r in res.rejected[:50]:
            click.echo(f"  line {r.line}: {r.field}: {r.message}", err=True)
        if len(res.rejected) > 50:
            click.echo(f"  ... {len(res.rejected) - 50} more"
                       + (f" (all in {errors_path})" if errors_path else " (use --errors FILE)"),
                       err=True)
        if res.rejected:
            click.echo("nothing was imported: correct the lines above and run it again",
                       err=True)
    if res.rejected:
        ctx.exit(1)


@contextmanager
def _progress_bar(first: str) -> Iterator[Callable[[str, int], None]]:
    """A rich progress line on stderr (only on a terminal); yields the callback to feed it."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda stage, done: None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(first)

        def step(stage: str, done: int) -> None:
            bar.update(task, description=f"{stage}: {done:,} rows")

        yield step


@admin_meter.command("block")
@click.argument("pan")
@click.option("--reason", required=True)
@click.pass_context
def admin_meter_block(ctx: click.Context, pan: str, reason: str) -> None:
    """Stop sales to a meter."""
    _, reg = open_vending(ctx)
    reg.set_meter_status(pan, "blocked", reason)
    say(ctx, f"meter {pan} blocked", {"meter": pan, "status": "blocked", "reason": reason})


@admin_meter.command("unblock")
@click.argument("pan")
@click.pass_context
def admin_meter_unblock(ctx: click.Context, pan: str) -> None:
    """Allow sales again."""
    _, reg = open_vending(ctx)
    reg.set_meter_status(pan, "active")
    say(ctx, f"meter {pan} active", {"meter": pan, "status": "active"})


@admin.group("vendor", cls=VendingGroup)
def admin_vendor() -> None:
    """Vendors (points of sale) and their float."""


@admin_vendor.command("add")
@click.argument("name")
@click.option("--float", "float_balance", default="0", show_default=True)
@click.option("--address", default="")
@click.option("--sgc", "sgcs", multiple=True, help="authorise for this SGC (repeatable)")
@click.pass_context
def admin_vendor_add(ctx: click.Context, name: str, float_balance: str, address: str,
                     sgcs: tuple[str, ...]) -> None:
    """Add a vendor."""
    _, reg = open_vending(ctx)
    reg.add_vendor(name, float_balance=float_balance, address=address, sgcs=list(sgcs))
    say(ctx, f"vendor {name} added", {"vendor": name, "added": True})


@admin_vendor.command("authorise")
@click.argument("name")
@click.argument("sgc")
@click.pass_context
def admin_vendor_authorise(ctx: click.Context, name: str, sgc: str) -> None:
    """Let a vendor sell for an SGC."""
    _, reg = open_vending(ctx)
    reg.authorise_vendor(name, sgc)
    say(ctx, f"vendor {name} may sell for {sgc}", {"vendor": name, "sgc": sgc,
                                                    "authorised": True})


@admin_vendor.command("topup")
@click.argument("name")
@click.argument("amount")
@click.option("--reference", default="top-up (CLI)", show_default=True,
              help="deposit slip / EFT reference, shown on the vendor's statement")
@click.pass_context
def admin_vendor_topup(ctx: click.Context, name: str, amount: str, reference: str) -> None:
    """Add to a vendor's float (above the utility's approval amount: a request that a second
    operator approves in the back office)."""
    _, reg = open_vending(ctx)
    from sts.vending.registry.float_approvals import request_top_up
    from sts.vending.tariff import money

    done = request_top_up(reg, name, amount, reference)
    if done.balance is not None:
        balance = money(done.balance)
        say(ctx, f"float of {name}: {balance}", {"vendor": name, "float_balance": balance,
                                                   "reference": reference,
                                                   "state": done.state})
        return
    assert done.limit is not None
    say(ctx, f"top-up request {done.request_id} for {name} waits for a second approver "
             f"(above {money(done.limit)}): approve it on /admin/vendors",
        {"vendor": name, "state": done.state, "request": done.request_id,
         "approval_above": money(done.limit), "reference": reference})


@admin_vendor.command("topups")
@click.option("--all", "every", is_flag=True, help="decided requests too")
@click.pass_context
def admin_vendor_topups(ctx: click.Context, every: bool) -> None:
    """Top-up requests waiting for a second approver (newest first)."""
    from sts.vending.registry.float_approvals import requests

    _, reg = open_vending(ctx)
    rows = requests(reg.db, state=None if every else "pending")
    say(ctx, "\n".join(f"{r['id']:>6} {r['state']:<9} {r['vendor']:<20} {r['amount']:>14} "
                        f"{r['requested_by']} {r['requested_at']}" for r in rows)
        or "no top-up requests", {"requests": rows})


@admin_vendor.command("approval-limit")
@click.argument("utility")
@click.argument("amount")
@click.pass_context
def admin_vendor_approval_limit(ctx: click.Context, utility: str, amount: str) -> None:
    """Float top-ups above AMOUNT for UTILITY's vendors need a second approver ('none': no
    top-up does)."""
    _, reg = open_vending(ctx)
    above = None if amount.lower() == "none" else amount
    reg.set_top_up_approval(utility, above)
    say(ctx, f"{utility}: top-ups above {amount} need a second approver" if above else
        f"{utility}: no top-up needs a second approver",
        {"utility": utility, "approval_above": above})


@admin.group("operator", cls=VendingGroup)
def admin_operator() -> None:
    """Operator accounts (web sign-in; passwords hashed with argon2id)."""


@admin_operator.command("add")
@click.argument("username")
@click.argument("role", type=click.Choice(["vendor", "supervisor", "engineer", "admin",
                                           "auditor"]))
@click.option("--name", default="")
@click.option("--vendor", default=None, help="the vendor a cashier/supervisor sells for")
@click.option("--password", default=None, envvar="STS_OPERATOR_PASSWORD",
              help="default: a random one, printed once [env STS_OPERATOR_PASSWORD]")
@click.pass_context
def admin_operator_add(ctx: click.Context, username: str, role: str, name: str,
                       vendor: str | None, password: str | None) -> None:
    """Add an operator who can sign in to the web pages."""
    import secrets

    from sts.vending.registry.operators import add_operator

    _, reg = open_vending(ctx)
    shown = password is None
    password = password or secrets.token_urlsafe(12)
    add_operator(reg, username, role, password, name=name, vendor=vendor)
    if wants_json(ctx):
        emit_json({"username": username, "role": role} | ({"password": password} if shown
                                                          else {}))
    else:
        click.echo(f"operator {username} ({role}) added"
                   + (f"; password (shown once): {password}" if shown else ""))


@admin_operator.command("password")
@click.argument("username")
@click.option("--password", default=None, envvar="STS_OPERATOR_PASSWORD",
              help="default: a random one, printed once")
@click.pass_context
def admin_operator_password(ctx: click.Context, username: str, password: str | None) -> None:
    """Set an operator's password (also unlocks the account)."""
    import secrets

    from sts.vending.registry.operators import set_password

    _, reg = open_vending(ctx)
    shown = password is None
    password = password or secrets.token_urlsafe(12)
    set_password(reg, username, password)
    say(ctx, f"password of {username} set" + (f": {password}" if shown else ""),
         {"username": username} | ({"password": password} if shown else {}))


@admin_operator.command("disable")
@click.argument("username")
@click.option("--enable", is_flag=True, help="enable again instead")
@click.pass_context
def admin_operator_disable(ctx: click.Context, username: str, enable: bool) -> None:
    """Disable an operator (ends their sessions), or --enable them again."""
    from sts.vending.registry.operators import set_active

    _, reg = open_vending(ctx)
    set_active(reg, username, enable)
    say(ctx, f"operator {username} {'enabled' if enable else 'disabled'}",
         {"username": username, "active": enable})


@admin_operator.command("role")
@click.argument("username")
@click.argument("role", type=click.Choice(["vendor", "supervisor", "engineer", "admin",
                                           "auditor"]))
@click.option("--vendor", default=None, help="the vendor a cashier/supervisor sells for")
@click.pass_context
def admin_operator_role(ctx: click.Context, username: str, role: str,
                        vendor: str | None) -> None:
    """Give an operator another role (ends their sessions)."""
    from sts.vending.registry.operators import set_role

    _, reg = open_vending(ctx)
    set_role(reg, username, role, vendor=vendor)
    say(ctx, f"operator {username} is now {role}", {"username": username, "role": role,
                                                    "vendor": vendor})


@admin.group("apikey", cls=VendingGroup)
def admin_apikey() -> None:
    """API keys (stored hashed; shown once)."""


@admin_apikey.command("add")
@click.argument("role", type=click.Choice(["vendor", "supervisor", "engineer", "admin",
                                           "auditor"]))
@click.option("--label", default="")
@click.option("--vendor", default=None, help="vendor whose float pays (vendor/supervisor)")
@click.option("--operator", default=None)
@click.pass_context
def admin_apikey_add(ctx: click.Context, role: str, label: str, vendor: str | None,
                     operator: str | None) -> None:
    """Create an API key and print it (the only time it is shown)."""
    _, reg = open_vending(ctx)
    key = reg.add_api_key(role, label=label, vendor=vendor, operator=operator)
    say(ctx, key, {"role": role, "api_key": key})


@admin_apikey.command("revoke")
@click.argument("prefix")
@click.pass_context
def admin_apikey_revoke(ctx: click.Context, prefix: str) -> None:
    """Revoke the API key starting with PREFIX (its first 12 characters)."""
    _, reg = open_vending(ctx)
    count = reg.revoke_api_key(prefix)
    say(ctx, "revoked", {"prefix": prefix, "revoked": count})


# --- campaign -------------------------------------------------------------------------------


@click.group(cls=VendingGroup, context_settings={"auto_envvar_prefix": "STS_CAMPAIGN"})
@click.pass_context
def campaign(ctx: click.Context) -> None:
    """Bulk key change campaigns (e.g. the TID rollover), resumable.

    The database options (--db, --kek-file, --sta-tables) and --json go before or after the
    subcommand.
    """
    ctx.ensure_object(dict)


@campaign.command("create")
@click.argument("name")
@click.option("--sgc", required=True)
@click.option("--to-krn", required=True, type=int)
@click.option("--from-krn", type=int, default=None, help="only meters on this key")
@click.option("--ro/--no-ro", default=None,
              help="rollover (clear TID memory); default: when the base date changes")
@click.pass_context
def campaign_create(ctx: click.Context, name: str, sgc: str, to_krn: int, from_krn: int | None,
                    ro: bool | None) -> None:
    """Select the meters of a campaign."""
    from sts.vending.usecases import campaign as camp

    svc, _ = open_vending(ctx)
    out = camp.create(svc, name, sgc=sgc, to_krn=to_krn, from_krn=from_krn, ro=ro)
    say(ctx, f"campaign {name}: {out['meters']} meters", out)


@campaign.command("run")
@click.argument("name")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="-",
              show_default=True, help="output file")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default=None,
              help="records as JSON Lines (the default, and with --json) or CSV")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="stop after this many new issues")
@click.option("--chunk", type=click.IntRange(1, 50_000), default=None,
              help="meters per transaction (default: sts.vending.usecases.campaign.DEFAULT_CHUNK)")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="worker processes on this host (PostgreSQL; more hosts: run the same "
                   "command on each)")
@click.option("--progress/--no-progress", default=None, help="progress bar (default: on a tty)")
@click.pass_context
def campaign_run(ctx: click.Context, name: str, out_path: str, fmt: str | None,
                 limit: int | None, chunk: int | None, workers: int,
                 progress: bool | None) -> None:
    """Issue the key changes; re-run to resume.  Writes every meter's record (earlier ones too).

    Workers claim chunks of meters through the database, so any number of `sts campaign run`
    processes, on any number of hosts, may share one campaign on PostgreSQL; each writes the
    records of what it issued (`sts campaign export` writes them all).  With --workers N this
    process starts N-1 more and, when all are done, writes every meter's record.  With --out
    FILE the summary follows on stdout (JSON with --json).
    """
    import json

    from rich.progress import Progress

    from sts.vending.usecases import campaign as camp

    chunk = chunk or camp.DEFAULT_CHUNK
    if fmt is None:
        fmt = "jsonl"
    elif fmt == "csv" and wants_json(ctx) and out_path == "-":
        raise click.UsageError("--json and --format csv both name the output: choose one")
    if workers > 1 and limit is not None:
        raise click.UsageError("--limit and --workers: choose one")
    svc, _ = open_vending(ctx)
    actor = f"cli:campaign:{name}"
    camp.status(svc, name)  # an unknown campaign fails before anything starts
    stopping = StopRequested()  # SIGTERM: the chunk in hand commits, then the run ends
    show = sys.stderr.isatty() if progress is None else progress
    out = sys.stdout if out_path == "-" else open(out_path, "w", newline="")  # noqa: SIM115
    failed_workers = 0
    try:
        if fmt == "csv":
            out.write(camp.csv_header())
        with Progress(disable=not show, transient=False) as bar:
            task = bar.add_task(f"campaign {name}", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            if workers == 1:
                recs = camp.run(svc, name, actor=actor, limit=limit, chunk=chunk,
                                progress=tick, stopping=stopping)
            else:
                failed_workers = _run_workers(ctx, svc, name, actor, chunk, workers, tick,
                                              stopping)
                recs = camp.records(svc, name)
            for rec in recs:
                out.write(camp.to_csv_row(rec) if fmt == "csv" else json.dumps(rec) + "\n")
                out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    if out_path != "-":
        _say_status(ctx, camp.status(svc, name))
    if failed_workers:
        raise click.ClickException(f"{failed_workers} worker(s) stopped with an error; "
                                   "run the campaign again to resume")


def _campaign_worker(settings: Settings, name: str, actor: str, chunk: int) -> None:
    """One extra worker process of `sts campaign run --workers N`."""
    from sts.vending.config import open_service
    from sts.vending.usecases import campaign as camp

    svc = open_service(settings)
    try:
        camp.work(svc, name, actor=actor, chunk=chunk, stopping=StopRequested())
    finally:
        svc.db.engine.dispose()


def _run_workers(ctx: click.Context, svc: VendingService, name: str, actor: str, chunk: int,
                 workers: int, tick: Any, stopping: Callable[[], bool]) -> int:
    """Run the campaign in this process and `workers - 1` more; the number that failed."""
    import multiprocessing

    from sts.vending.usecases import campaign as camp

    settings = ctx.ensure_object(dict)["settings"]
    spawn = multiprocessing.get_context("spawn")
    procs = [spawn.Process(target=_campaign_worker, args=(settings, name, actor, chunk))
             for _ in range(workers - 1)]
    for p in procs:
        p.start()

    def progress(_n: int) -> None:
        st = camp.status(svc, name)
        tick(st["done"] + st["failed"] + st["skipped"],
             st["pending"] + st["done"] + st["failed"] + st["skipped"])

    try:
        camp.work(svc, name, actor=actor, chunk=chunk, progress=progress, stopping=stopping)
    finally:
        if stopping():  # pass SIGTERM on: each worker finishes its chunk and ends
            for p in procs:
                if p.pid is not None and p.is_alive():
                    os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join()
    return sum(1 for p in procs if p.exitcode != 0)


@campaign.command("export")
@click.argument("name")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="-",
              show_default=True, help="output file")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="records as JSON Lines or CSV")
@click.pass_context
def campaign_export(ctx: click.Context, name: str, out_path: str, fmt: str) -> None:
    """Write the record of every meter the campaign has finished (issues nothing)."""
    import json

    from sts.vending.usecases import campaign as camp

    svc, _ = open_vending(ctx)
    camp.status(svc, name)
    out = sys.stdout if out_path == "-" else open(out_path, "w", newline="")  # noqa: SIM115
    try:
        if fmt == "csv":
            out.write(camp.csv_header())
        for rec in camp.records(svc, name):
            out.write(camp.to_csv_row(rec) if fmt == "csv" else json.dumps(rec) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if out_path != "-":
        _say_status(ctx, camp.status(svc, name))


@campaign.command("status")
@click.argument("name")
@click.pass_context
def campaign_status(ctx: click.Context, name: str) -> None:
    """Counts of pending, done and failed meters."""
    from sts.vending.usecases import campaign as camp

    svc, _ = open_vending(ctx)
    _say_status(ctx, camp.status(svc, name))


def _say_status(ctx: click.Context, st: dict[str, Any]) -> None:
    counts = ", ".join(f"{k} {st[k]}" for k in ("pending", "done", "failed", "skipped"))
    say(ctx, f"campaign {st['campaign']}: {counts}", st)


# --- audit ------------------------------------------------------------------------------------


@click.group(cls=VendingGroup)
@click.pass_context
def audit(ctx: click.Context) -> None:
    """The audit log (--db and --json go before or after the subcommand)."""
    ctx.ensure_object(dict)


@audit.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Check the hash chains of the audit log and of every meter's transactions."""
    from sts.vending import audit as audit_mod
    from sts.vending.storage.database import Database, migrate

    db = Database(settings_of(ctx).db_url)
    try:
        migrate(db)
        result = audit_mod.verify(db)
    finally:
        db.dispose()
    if wants_json(ctx):
        emit_json(result.as_dict())
    else:
        click.echo(f"audit entries {result.entries}, meters {result.meters}, transactions "
                   f"{result.transactions}: {'OK' if result.ok else 'BROKEN'}")
        for p in result.problems[:50]:
            click.echo(f"  {p}")
    if not result.ok:
        raise SystemExit(7)


def _electrum_commands() -> None:
    from sts.cli.electrum import electrum
    from sts.cli.mobile_money import mobile_money

    admin.add_command(electrum)
    admin.add_command(mobile_money)


_electrum_commands()


def _xmlvend_commands() -> None:
    from sts.cli.xmlvend import xmlvend

    admin.add_command(xmlvend)


_xmlvend_commands()


def _config_commands() -> None:
    from sts.cli.config import config

    admin.add_command(config)


_config_commands()


def _backup_commands() -> None:
    from sts.cli.backup import admin_backup, admin_restore

    admin.add_command(admin_backup)
    admin.add_command(admin_restore)


_backup_commands()
