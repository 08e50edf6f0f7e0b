"""`sts admin key ceremony | list | migrate` and the security module options.

The options (`--security-module`, `--pkcs11-lib`, `--pkcs11-token`, `--pkcs11-pin-file`,
`--pkcs11-cache-seconds`) belong to `sts serve`, `sts admin` and `sts campaign`; there is no PIN
option on purpose: a command line is visible to every user of the machine (ps, shell history),
so the PIN comes from $STS_PKCS11_PIN or a PIN file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import click

from sts.cli.common import emit_json, json_option

# --- admin key ceremony / list / migrate -----------------------------------------------------------


def _registry(ctx: click.Context) -> Any:
    from sts.cli.context import open_vending

    svc, reg = open_vending(ctx)
    ctx.call_on_close(svc.sm.close)  # log out of the token when the command ends
    return reg


def _component_reader(total: int) -> Callable[[int], str]:
    """Hidden prompts on a terminal; one line per component from stdin for scripts."""
    from sts.errors import InputError

    def read(n: int) -> str:
        if sys.stdin.isatty():
            return str(click.prompt(f"custodian {n} of {total}, enter component {n}",
                                    hide_input=True, err=True))
        line = sys.stdin.readline()
        if not line.strip():
            raise InputError(f"component {n} is missing on standard input", field=f"component{n}")
        return line

    return read


@click.command("ceremony")
@click.argument("sgc")
@click.argument("krn", type=int)
@click.option("--components", type=click.IntRange(2, 3), required=True,
              help="how many custodians hold a component (2 or 3)")
@click.option("--dkga", default="4", show_default=True, type=click.Choice(["2", "4"]))
@click.option("--ea", default="7", show_default=True, type=click.Choice(["7", "11"]))
@click.option("--base-date", default="2014", show_default=True,
              type=click.Choice(["1993", "2014", "2035"]))
@click.option("--key-type", default="VUDK", show_default=True,
              type=click.Choice(["VUDK", "VDDK", "VCDK"]))
@click.option("--table-set", type=click.Choice(["sample", "production"]), default=None)
@click.option("--ken", default=255, show_default=True, type=int)
@click.option("--issued-until", default=None, help="no tokens after this time")
@click.option("--kct-until", default=None, help="key change tokens until this time")
@click.option("--credit-limit", default=None, help="money this key may vend")
@click.option("--expect-kcv", default=None,
              help="the combined key's KCV from the KMC's letter: refuse a mismatch")
@click.option("--not-current", is_flag=True, help="do not make it the SGC's current key")
@json_option
@click.pass_context
def key_ceremony(ctx: click.Context, sgc: str, krn: int, components: int, dkga: str, ea: str,
                 base_date: str, key_type: str, table_set: str | None, ken: int,
                 issued_until: str | None, kct_until: str | None, credit_limit: str | None,
                 expect_kcv: str | None, not_current: bool, as_json: bool) -> None:
    """Load a vending key from custodians' components (XOR), showing every KCV.

    Each custodian types a component (hidden; one line each on stdin for scripts).  Nothing of a
    component or the key is written anywhere; the audit log records each step and KCV.
    """
    from sts.cli.context import parse_time
    from sts.vending.registry.keys import ceremony

    reg = _registry(ctx)
    if table_set is None and int(ea) == 7:
        table_set = "production" if ctx.obj["settings"].sta_tables else "sample"

    def show(item: dict[str, Any]) -> None:
        if as_json:
            emit_json(item)
        elif "component" in item:
            click.echo(f"component {item['component']}: KCV {item['kcv']}", err=True)
        else:
            click.echo(f"key {item['key']} loaded into the {item['module']} module: "
                       f"KCV {item['kcv']}", err=True)

    ceremony(reg, sgc, krn, components=components, read_component=_component_reader(components),
             show=show, dkga=int(dkga), ea=int(ea), base_date=int(base_date), key_type=key_type,
             table_set=table_set, ken=ken,
             issued_until=parse_time(issued_until, "issued_until"),
             kct_until=parse_time(kct_until, "kct_until"),
             credit_limit=Decimal(credit_limit) if credit_limit else None,
             expect_kcv=expect_kcv, make_current=not not_current)


@click.command("migrate")
@click.option("--to", "target", type=click.Choice(["pkcs11"]), required=True)
@json_option
@click.pass_context
def key_migrate(ctx: click.Context, target: str, as_json: bool) -> None:
    """Move software-held vending keys into the PKCS#11 module; the software copies are
    overwritten and the database compacted."""
    from sts.vending.registry.keys import migrate

    def progress(item: dict[str, Any]) -> None:
        if as_json:
            emit_json(item)
        else:
            extra = item.get("location") or item.get("reason", "")
            click.echo(f"{item['key']}: {item['status']} {extra}", err=True)

    out = migrate(_registry(ctx), to=target, progress=progress)
    summary = {k: v for k, v in out.items() if k != "keys"}
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"moved {out['moved']}, skipped {out['skipped']}; {out['note']}")


def add_key_commands(group: click.Group) -> list[click.Command]:
    """Register the commands into `sts admin key`; returns them (the caller adds the shared
    options)."""
    commands: list[click.Command] = [key_ceremony, key_migrate]
    for command in commands:
        group.add_command(command)
    return commands
