"""`sts admin mobile-money`: the M-Pesa paybill's back office from the shell.

    register --base URL   tell Daraja our validation and confirmation URLs (OAuth first)
    reconcile FILE        the provider's statement (CSV) against our payments, both ways
    exceptions            payments that could not be sold, with their reason
    settle ID sell|refund settle an exception (sell again, or record the refund)
    retry                 sell payments left received by a stop between callback and sale

Secrets (consumer key and secret, passkey) come from the file named by STS_MPESA_SECRETS
(mode 0600), never from the command line.  The shell's operator acts as an administrator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sts.cli.common import emit_json
from sts.cli.context import VendingGroup, open_vending, say, wants_json


def _admin() -> Any:
    from sts.vending.access.policy import Caller

    return Caller(0, "admin", "cli", None)


@click.group("mobile-money", cls=VendingGroup)
def mobile_money() -> None:
    """Mobile-money payments (M-Pesa): register, reconcile, exceptions."""


@mobile_money.command("register")
@click.option("--base", required=True, help="our public base URL, e.g. https://pay.example.org")
@click.pass_context
def mm_register(ctx: click.Context, base: str) -> None:
    """Register the C2B validation and confirmation URLs with Daraja."""
    from sts.payments.config import MobileMoneySettings
    from sts.payments.mpesa import Mpesa

    out = Mpesa(MobileMoneySettings.from_env()).register_urls(base.rstrip("/"))
    say(ctx, f"registered: {out.get('ResponseDescription', out)}", out)


@mobile_money.command("reconcile")
@click.argument("statement", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--sell", is_flag=True,
              help="record and sell the statement's payments we never heard of (lost "
                   "callbacks), as the channel, before reporting")
@click.pass_context
def mm_reconcile(ctx: click.Context, statement: Path, sell: bool) -> None:
    """Match every statement line to a sold payment; list the differences both ways."""
    from sts.payments.config import MobileMoneySettings
    from sts.payments.mpesa import parse_statement

    svc, _ = open_vending(ctx)
    lines = parse_statement(statement.read_text(encoding="utf-8-sig"))
    if sell:
        channel = svc.channel_caller(MobileMoneySettings.from_env().vendor, "mpesa")
        for p in svc.record_statement("mpesa", lines, channel):
            if not wants_json(ctx):
                click.echo(f"recorded {p['provider_id']} {p['amount']}: {p['state']} "
                           f"{p['reason']}".rstrip())
    out = svc.reconcile_payments("mpesa", lines, _admin())
    if wants_json(ctx):
        emit_json(out)
    else:
        click.echo(f"{out['lines']} statement lines, {out['matched']} matched")
        for key, title in (("not_recorded", "on the statement, never recorded here"),
                           ("not_sold", "recorded, not sold"),
                           ("amount_differs", "amount differs"),
                           ("not_on_statement", "recorded here, not on the statement")):
            for item in out[key]:
                click.echo(f"  {title}: {item['provider_id']} {item['amount']} "
                           f"{item.get('account', '')} {item.get('reason', '')}".rstrip())
    # exit 1 when anything differs, so a scheduled job can alert on it
    if any(out[k] for k in ("not_recorded", "not_sold", "amount_differs", "not_on_statement")):
        raise SystemExit(1)


@mobile_money.command("report")
@click.option("--from", "start", required=True, help="UTC start, e.g. 2026-12-01T00:00:00")
@click.option("--to", "end", required=True, help="UTC end (excluded)")
@click.pass_context
def mm_report(ctx: click.Context, start: str, end: str) -> None:
    """Payments per state, and whether the sold ones tie to the channel's sales."""
    from sts.cli.context import parse_time

    svc, _ = open_vending(ctx)
    t0, t1 = parse_time(start, "from"), parse_time(end, "to")
    assert t0 is not None and t1 is not None
    out = svc.payments_report(_admin(), "mpesa", t0, t1)
    if wants_json(ctx):
        emit_json(out)
    else:
        for state, v in out["states"].items():
            click.echo(f"{state:10} {v['count']:6} {v['amount']:>14}")
        click.echo(f"sold {out['sold_total']} = sales {out['sales_total']}: "
                   f"{'ties' if out['ties'] else 'DOES NOT TIE'}")
        for item in out["untied"]:
            click.echo(f"  {item['provider_id']} {item['amount']}: sale {item['sale']}")
    if not out["ties"]:
        raise SystemExit(1)


@mobile_money.command("exceptions")
@click.pass_context
def mm_exceptions(ctx: click.Context) -> None:
    """Payments that could not be sold, oldest first."""
    svc, _ = open_vending(ctx)
    items = svc.list_payments(_admin(), state="exception", limit=500)["payments"]
    if wants_json(ctx):
        for item in items:
            emit_json(item)
        return
    for item in items:
        click.echo(f"{item['provider']} {item['provider_id']} {item['amount']} "
                   f"{item['account']!r}: {item['reason']}")


@mobile_money.command("settle")
@click.argument("provider_id")
@click.argument("action", type=click.Choice(["sell", "refund"]))
@click.option("--reason", required=True, help="why (the refund's reference, ...)")
@click.pass_context
def mm_settle(ctx: click.Context, provider_id: str, action: str, reason: str) -> None:
    """Sell an exception again (e.g. once its meter is unblocked), or record its refund."""
    svc, _ = open_vending(ctx)
    out = svc.settle_payment("mpesa", provider_id, action, reason, _admin())
    say(ctx, f"{provider_id}: {out['state']} {out['reason']}".rstrip(), out)


@mobile_money.command("prompts")
@click.option("--older-than", default=120.0, show_default=True,
              help="seconds a prompt has waited for its callback")
@click.pass_context
def mm_prompts(ctx: click.Context, older_than: float) -> None:
    """Resolve prompts whose callback never came, by M-Pesa's status query."""
    from sts.payments.config import MobileMoneySettings
    from sts.payments.routes import resolve_prompts

    svc, _ = open_vending(ctx)
    settings = MobileMoneySettings.from_env()
    out = resolve_prompts(svc, settings, older_than)
    if wants_json(ctx):
        for item in out:
            emit_json(item)
    else:
        for item in out:
            click.echo(f"{item['request_id']}: {item['state']}")


@mobile_money.command("retry")
@click.pass_context
def mm_retry(ctx: click.Context) -> None:
    """Sell the payments a stop left received (idempotent: each is sold once)."""
    from sts.payments.config import MobileMoneySettings

    svc, _ = open_vending(ctx)
    caller = svc.channel_caller(MobileMoneySettings.from_env().vendor, "mpesa")
    n = svc.retry_payments(caller)
    say(ctx, f"{n} payment(s) settled", {"settled": n})
