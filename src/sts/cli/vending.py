"""`sts serve`, `sts admin`, `sts campaign`, `sts audit`: the vending server's commands.

Heavy imports (FastAPI, SQLAlchemy, uvicorn) happen inside the commands, so `sts --help`
stays fast.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sts.cli.common import emit_json, json_option, tables_option
from sts.cli.deliver import deliver_options, register_admin, start_dispatcher

if TYPE_CHECKING:
    from sts.vending.config import Settings
    from sts.vending.registry import Registry
    from sts.vending.service import VendingService

DEFAULT_DB = "sts-vending.sqlite3"


def db_options(func: Any) -> Any:
    func = click.option("--db", "db_url", envvar="STS_DB_URL", default=DEFAULT_DB,
                        show_default=True,
                        help="database: a SQLite file or postgresql://... [env STS_DB_URL]")(func)
    func = click.option("--kek-file", envvar="STS_KEK_FILE", default=None,
                        help="key-encryption key file (64 hex digits) [env STS_KEK_FILE; or "
                        "STS_KEK]; default for SQLite: <db>.kek")(func)
    return tables_option(func)


def _settings(db_url: str, kek_file: str | None, sta_tables: str | None,
              **extra: Any) -> Settings:
    from sts.vending.config import Settings

    return Settings(db_url=db_url, kek_file=kek_file, sta_tables=sta_tables, **extra)


def _open(ctx: click.Context) -> tuple[VendingService, Registry]:
    from sts.vending.config import open_service
    from sts.vending.registry import Registry

    obj = ctx.obj
    if "service" not in obj:
        s = obj["settings"]
        svc = open_service(s, run_migrations=True, create_kek=True)
        obj["service"] = svc
        obj["registry"] = Registry(svc.db, svc.sm, actor=f"cli:{os.environ.get('USER', '?')}")
    return obj["service"], obj["registry"]


def _parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    from sts.codec.tid import parse_datetime

    return parse_datetime(value, field=name)


# --- serve -------------------------------------------------------------------------------------


@click.command()
@db_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8062, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="server processes (all share the database)")
@click.option("--demo", is_flag=True, help="fill an empty database with demo data first")
@click.option("--lookup-limit", default=600, show_default=True, type=int,
              help="meter lookups per API key per minute (kept in the database)")
@click.option("--log-level", default="warning", show_default=True)
@deliver_options  # token delivery (sts.cli.deliver): --ami-broker, --delivery-config
@click.option("--no-deliver", is_flag=True,
              help="no delivery dispatcher here (a separate `sts deliver run` does it)")
def serve(db_url: str, kek_file: str | None, sta_tables: str | None, host: str, port: int,
          workers: int, demo: bool, lookup_limit: int, log_level: str,
          ami_broker: str | None, delivery_config: str | None, ami_client_id: str | None,
          no_deliver: bool) -> None:
    """Run the vending server: creates and migrates the database, then serves HTTP."""
    import uvicorn

    from sts.vending.config import open_service
    from sts.vending.registry import Registry, fill_demo

    settings = _settings(db_url, kek_file, sta_tables, lookup_limit=lookup_limit)
    svc = open_service(settings, run_migrations=True, create_kek=True)
    if demo:
        reg = Registry(svc.db, svc.sm, actor="serve --demo")
        if reg.is_empty():
            info = fill_demo(reg, production_tables=bool(sta_tables))
            click.echo("demo data created; API keys (shown once):", err=True)
            emit_json(info)
        else:
            click.echo("database already has data: demo skipped", err=True)
    svc.db.dispose()
    os.environ.update(settings.env())
    click.echo(f"serving on http://{host}:{port} (docs at /docs), database {settings.db_url}",
               err=True)
    app = "sts.vending.api:app_from_env"
    # token delivery: one dispatcher in this (supervising) process, off the sales' path
    dispatcher = None if no_deliver else start_dispatcher(settings.db_url, ami_broker,
                                                          delivery_config, ami_client_id)
    try:
        if workers <= 1:
            uvicorn.run(app, factory=True, host=host, port=port, log_level=log_level)
            return
        from uvicorn.supervisors import Multiprocess

        config = uvicorn.Config(app, factory=True, host=host, port=port, workers=workers,
                                log_level=log_level)
        Multiprocess(config, sockets=[_listen(host, port)]).run()
    finally:
        if dispatcher is not None:
            dispatcher.stop()


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


@click.group()
@db_options
@click.pass_context
def admin(ctx: click.Context, db_url: str, kek_file: str | None, sta_tables: str | None) -> None:
    """Manage utilities, SGCs, vending keys, tariffs, meters, vendors, operators, API keys."""
    ctx.ensure_object(dict)
    ctx.obj["settings"] = _settings(db_url, kek_file, sta_tables)


@admin.command("migrate")
@click.pass_context
def admin_migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema."""
    svc, _ = _open(ctx)
    from sts.vending.db import migrate

    click.echo(f"schema at revision {migrate(svc.db)}")


@admin.command("demo")
@click.option("--meters", "count", default=5, show_default=True, type=int)
@json_option
@click.pass_context
def admin_demo(ctx: click.Context, count: int, as_json: bool) -> None:
    """Fill an empty database with a demo utility; prints the API keys once."""
    from sts.vending.registry import fill_demo

    _, reg = _open(ctx)
    info = fill_demo(reg, production_tables=bool(ctx.obj["settings"].sta_tables),
                     meters_count=count)
    if as_json:
        emit_json(info)
    else:
        for role, key in info["api_keys"].items():
            click.echo(f"{role:10} {key}")
        click.echo("meters: " + " ".join(info["meters"]))


@admin.command("utility")
@click.argument("name")
@click.option("--address", default="")
@click.option("--vat-reg-num", default="")
@click.option("--currency", default="ZAR")
@click.pass_context
def admin_utility(ctx: click.Context, name: str, address: str, vat_reg_num: str,
                  currency: str) -> None:
    """Add a utility."""
    _, reg = _open(ctx)
    reg.add_utility(name, address=address, vat_reg_num=vat_reg_num, currency=currency)
    click.echo(f"utility {name} added")


@admin.command("sgc")
@click.argument("sgc")
@click.option("--utility", required=True)
@click.option("--name", default="")
@click.pass_context
def admin_sgc(ctx: click.Context, sgc: str, utility: str, name: str) -> None:
    """Add a supply group (SGC)."""
    _, reg = _open(ctx)
    reg.add_sgc(sgc, utility=utility, name=name)
    click.echo(f"SGC {sgc} added")


@admin.group("key")
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

    _, reg = _open(ctx)
    raw = None
    if import_file or import_env:
        text = Path(import_file).read_text() if import_file else os.environ.get(import_env or "")
        try:
            raw = bytes.fromhex((text or "").strip())
        except ValueError:
            raise InputError("the imported key must be hex digits", field="key") from None
    if table_set is None and int(ea) == 7:
        table_set = "production" if ctx.obj["settings"].sta_tables else "sample"
    reg.add_key(sgc, krn, dkga=int(dkga), ea=int(ea), base_date=int(base_date),
                key_type=key_type, table_set=table_set, ken=ken,
                issued_until=_parse_time(issued_until, "issued_until"),
                kct_until=_parse_time(kct_until, "kct_until"),
                credit_limit=Decimal(credit_limit) if credit_limit else None, raw=raw,
                make_current=not not_current)
    click.echo(f"key {sgc}/{krn} {'imported' if raw else 'generated'}")


@admin_key.command("current")
@click.argument("sgc")
@click.argument("krn", type=int)
@click.pass_context
def admin_key_current(ctx: click.Context, sgc: str, krn: int) -> None:
    """Make SGC/KRN the key new tokens are made under (meters follow on their next sale)."""
    _, reg = _open(ctx)
    reg.set_current_key(sgc, krn)
    click.echo(f"current key of {sgc} is KRN {krn}")


@admin_key.command("list")
@click.pass_context
def admin_key_list(ctx: click.Context) -> None:
    """Key attributes (never the keys)."""
    _, reg = _open(ctx)
    for row in reg.list_keys():
        emit_json(row)


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
    _, reg = _open(ctx)
    reg.add_tariff(name, price=price, blocks=parsed, vat_rate=vat_rate,
                   fixed_monthly=fixed_monthly, debt_share=debt_share, free_units=free_units,
                   min_amount=min_amount, max_amount=max_amount, ti=ti)
    click.echo(f"tariff {name} added")


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
    _, reg = _open(ctx)
    reg.add_customer(account_no, name, address=address, phone=phone, debt=debt)
    click.echo(f"customer {account_no} added")


@admin.group("meter")
def admin_meter() -> None:
    """Meters."""


register_admin(admin_meter)  # token delivery: `export-sim`, `ami` (sts.cli.deliver)


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
@click.pass_context
def admin_meter_add(ctx: click.Context, pan: str, sgc: str, tariff: str, krn: int | None,
                    ti: int, kt: int, ken: int | None, service: str,
                    customer: str | None) -> None:
    """Register a meter (PAN validated)."""
    _, reg = _open(ctx)
    reg.add_meter(pan, sgc=sgc, tariff=tariff, krn=krn, ti=ti, kt=kt, ken=ken, service=service,
                  customer=customer)
    click.echo(f"meter {pan} added")


@admin_meter.command("block")
@click.argument("pan")
@click.option("--reason", required=True)
@click.pass_context
def admin_meter_block(ctx: click.Context, pan: str, reason: str) -> None:
    """Stop sales to a meter."""
    _, reg = _open(ctx)
    reg.set_meter_status(pan, "blocked", reason)
    click.echo(f"meter {pan} blocked")


@admin_meter.command("unblock")
@click.argument("pan")
@click.pass_context
def admin_meter_unblock(ctx: click.Context, pan: str) -> None:
    """Allow sales again."""
    _, reg = _open(ctx)
    reg.set_meter_status(pan, "active")
    click.echo(f"meter {pan} active")


@admin.group("vendor")
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
    _, reg = _open(ctx)
    reg.add_vendor(name, float_balance=float_balance, address=address, sgcs=list(sgcs))
    click.echo(f"vendor {name} added")


@admin_vendor.command("authorise")
@click.argument("name")
@click.argument("sgc")
@click.pass_context
def admin_vendor_authorise(ctx: click.Context, name: str, sgc: str) -> None:
    """Let a vendor sell for an SGC."""
    _, reg = _open(ctx)
    reg.authorise_vendor(name, sgc)
    click.echo(f"vendor {name} may sell for {sgc}")


@admin_vendor.command("topup")
@click.argument("name")
@click.argument("amount")
@click.pass_context
def admin_vendor_topup(ctx: click.Context, name: str, amount: str) -> None:
    """Add to a vendor's float."""
    _, reg = _open(ctx)
    click.echo(f"float of {name}: {reg.top_up(name, amount)}")


@admin.command("operator")
@click.argument("username")
@click.argument("role", type=click.Choice(["vendor", "supervisor", "engineer", "admin",
                                           "auditor"]))
@click.option("--name", default="")
@click.option("--vendor", default=None)
@click.pass_context
def admin_operator(ctx: click.Context, username: str, role: str, name: str,
                   vendor: str | None) -> None:
    """Add an operator with a role."""
    _, reg = _open(ctx)
    reg.add_operator(username, role, name=name, vendor=vendor)
    click.echo(f"operator {username} ({role}) added")


@admin.group("apikey")
def admin_apikey() -> None:
    """API keys (stored hashed; shown once)."""


@admin_apikey.command("add")
@click.argument("role", type=click.Choice(["vendor", "supervisor", "engineer", "admin",
                                           "auditor"]))
@click.option("--label", default="")
@click.option("--vendor", default=None, help="vendor whose float pays (vendor/supervisor)")
@click.option("--operator", default=None)
@json_option
@click.pass_context
def admin_apikey_add(ctx: click.Context, role: str, label: str, vendor: str | None,
                     operator: str | None, as_json: bool) -> None:
    """Create an API key and print it (the only time it is shown)."""
    _, reg = _open(ctx)
    key = reg.add_api_key(role, label=label, vendor=vendor, operator=operator)
    if as_json:
        emit_json({"role": role, "api_key": key})
    else:
        click.echo(key)


@admin_apikey.command("revoke")
@click.argument("prefix")
@click.pass_context
def admin_apikey_revoke(ctx: click.Context, prefix: str) -> None:
    """Revoke the API key starting with PREFIX (its first 12 characters)."""
    _, reg = _open(ctx)
    reg.revoke_api_key(prefix)
    click.echo("revoked")


# --- campaign -------------------------------------------------------------------------------


@click.group()
@db_options
@click.pass_context
def campaign(ctx: click.Context, db_url: str, kek_file: str | None,
             sta_tables: str | None) -> None:
    """Bulk key change campaigns (e.g. the TID rollover), resumable."""
    ctx.ensure_object(dict)
    ctx.obj["settings"] = _settings(db_url, kek_file, sta_tables)


@campaign.command("create")
@click.argument("name")
@click.option("--sgc", required=True)
@click.option("--to-krn", required=True, type=int)
@click.option("--from-krn", type=int, default=None, help="only meters on this key")
@click.option("--ro/--no-ro", default=None,
              help="rollover (clear TID memory); default: when the base date changes")
@json_option
@click.pass_context
def campaign_create(ctx: click.Context, name: str, sgc: str, to_krn: int, from_krn: int | None,
                    ro: bool | None, as_json: bool) -> None:
    """Select the meters of a campaign."""
    from sts.vending import campaign as camp

    svc, _ = _open(ctx)
    out = camp.create(svc, name, sgc=sgc, to_krn=to_krn, from_krn=from_krn, ro=ro)
    emit_json(out) if as_json else click.echo(f"campaign {name}: {out['meters']} meters")


@campaign.command("run")
@click.argument("name")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="-",
              show_default=True, help="output file")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True)
@click.option("--limit", type=int, default=None, help="stop after this many new issues")
@click.option("--progress/--no-progress", default=None, help="progress bar (default: on a tty)")
@click.pass_context
def campaign_run(ctx: click.Context, name: str, out_path: str, fmt: str, limit: int | None,
                 progress: bool | None) -> None:
    """Issue the key changes; re-run to resume.  Writes every meter's record (earlier ones too)."""
    import json

    from rich.progress import Progress

    from sts.vending import campaign as camp

    svc, _ = _open(ctx)
    show = sys.stderr.isatty() if progress is None else progress
    out = sys.stdout if out_path == "-" else open(out_path, "w", newline="")  # noqa: SIM115
    try:
        if fmt == "csv":
            out.write(camp.csv_header())
        with Progress(disable=not show, transient=False) as bar:
            task = bar.add_task(f"campaign {name}", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            for rec in camp.run(svc, name, actor=f"cli:campaign:{name}", limit=limit,
                                progress=tick):
                out.write(camp.to_csv_row(rec) if fmt == "csv" else json.dumps(rec) + "\n")
                out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    emit_json(camp.status(svc, name)) if out_path != "-" else None


@campaign.command("status")
@click.argument("name")
@click.pass_context
def campaign_status(ctx: click.Context, name: str) -> None:
    """Counts of pending, done and failed meters."""
    from sts.vending import campaign as camp

    svc, _ = _open(ctx)
    emit_json(camp.status(svc, name))


# --- audit ------------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
@click.option("--db", "db_url", envvar="STS_DB_URL", default=DEFAULT_DB, show_default=True)
@json_option
def audit_verify(db_url: str, as_json: bool) -> None:
    """Check the hash chains of the audit log and of every meter's transactions."""
    from sts.vending import audit as audit_mod
    from sts.vending.db import Database, migrate

    db = Database(db_url)
    migrate(db)
    result = audit_mod.verify(db)
    if as_json:
        emit_json(result.as_dict())
    else:
        click.echo(f"audit entries {result.entries}, meters {result.meters}, transactions "
                   f"{result.transactions}: {'OK' if result.ok else 'BROKEN'}")
        for p in result.problems[:50]:
            click.echo(f"  {p}")
    if not result.ok:
        raise SystemExit(7)
