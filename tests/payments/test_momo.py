"""MTN MoMo Collections end to end, the second provider through the same service rule:
RequestToPay against a stand-in that calls back to /pay/momo/callback; SUCCESSFUL sells once
(repeated callbacks change nothing), FAILED sells nothing, a lost callback is resolved by
the status query (which names the transaction, so it is sold), another currency is an
exception."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sts.payments.config import MomoSettings
from sts.payments.momo import Momo, parse_statement
from sts.payments.sandbox.momo import MomoStandIn
from sts.vending.access.policy import Caller
from sts.vending.registry.admin import DEMO_SGC
from sts.vending.storage.tables import transactions
from sts.vending.storage.tables_delivery import deliveries
from sts.vending.storage.tables_payments import payment_requests, payments
from tests.payments.conftest import Momo as MomoFixture
from tests.support.live import free_socket, serving
from tests.support.waiting import wait_for

PHONE = "256772000111"


@dataclass
class Rig:
    fx: MomoFixture
    standin: MomoStandIn
    momo: Momo
    caller: Caller

    def buy(self, meter: str, amount: str = "100") -> str:
        out = self.fx.service.prompt_payment(meter, amount, PHONE, self.caller,
                                             self.momo.initiate, "momo",
                                             self.momo.settings.currency)
        return str(out["request_id"])

    def count(self, table: Any, *where: Any) -> int:
        with self.fx.service.db.read() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(table)
                                   .where(*where)) or 0)

    def state(self, ref: str) -> str:
        with self.fx.service.db.read() as conn:
            return str(conn.scalar(sa.select(payment_requests.c.state)
                                   .where(payment_requests.c.request_id == ref)))


@pytest.fixture
def rig(momo: MomoFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    from sts.server.app import create_app

    momo.demo.registry.add_vendor("MTN MoMo", float_balance="100000", sgcs=[DEMO_SGC])
    standin = MomoStandIn(api_user="11111111-2222-3333-4444-555555555555", api_key="k3y",
                          subscription_key="sub").start()
    secret_file = tmp_path / "momo.secrets"
    secret_file.write_text(f"api_user={standin.api_user}\napi_key=k3y\nsubscription_key=sub\n")
    os.chmod(secret_file, 0o600)
    sock, url = free_socket()
    monkeypatch.setenv("STS_MOMO_API", standin.url)
    monkeypatch.setenv("STS_MOMO_SECRETS", str(secret_file))
    monkeypatch.setenv("STS_MOMO_CURRENCY", "UGX")
    monkeypatch.setenv("STS_MPESA_CALLBACK_BASE", url)
    settings = MomoSettings.from_env()
    caller = momo.service.channel_caller("MTN MoMo", "momo")
    try:
        with serving(create_app(momo.service), sock):
            yield Rig(momo, standin, Momo(settings), caller)
    finally:
        standin.stop()


def test_successful_sells_once(rig: Rig) -> None:
    ref = rig.buy(rig.fx.meters[0])
    wait_for(lambda: rig.state(ref) == "paid", 20, "the callback")
    assert rig.standin.errors == []
    (req,) = rig.standin.requests.values()
    assert req["externalId"] == ref and req["currency"] == "UGX" and req["amount"] == "100"
    assert rig.count(transactions, transactions.c.kind == "sale") == 1
    assert rig.count(deliveries, deliveries.c.channel == "sms",
                     deliveries.c.recipient == "+" + PHONE) == 1
    # MoMo repeats the callback: nothing new
    rig.standin.call_back(ref, rig.momo.settings.callback_base + "/pay/momo/callback")
    assert rig.standin.errors == [] and rig.count(transactions) == 1
    got = rig.fx.service.payment("momo", "1000000000", Caller(0, "auditor", "t", None))
    assert got["state"] == "sold" and got["currency"] == "UGX" and got["sale"]["tokens"]


def test_failed_sells_nothing(rig: Rig) -> None:
    rig.standin.outcome = "REJECTED"
    ref = rig.buy(rig.fx.meters[1])
    wait_for(lambda: rig.state(ref) == "cancelled", 20, "the callback")
    assert rig.count(payments) == 0 and rig.count(transactions) == 0


def test_lost_callback_sold_by_status_query(rig: Rig) -> None:
    from sts.payments.routes import resolve_prompts

    rig.standin.lose_callbacks = True
    ref = rig.buy(rig.fx.meters[1])
    rig.fx.demo.clock.advance(seconds=300)
    (out,) = resolve_prompts(rig.fx.service, rig.momo.settings, 60, rig.momo)
    assert out["state"] == "paid" and out["payment"]["state"] == "sold"
    assert rig.state(ref) == "paid" and rig.count(transactions) == 1
    assert resolve_prompts(rig.fx.service, rig.momo.settings, 60, rig.momo) == []


def test_other_currency_is_an_exception(rig: Rig) -> None:
    rig.standin.paid_currency = "KES"
    ref = rig.buy(rig.fx.meters[2])
    wait_for(lambda: rig.state(ref) == "paid", 20, "the callback")
    (p,) = rig.fx.service.list_payments(Caller(0, "admin", "t", None), provider="momo")[
        "payments"]
    assert p["state"] == "exception" and "asked for UGX" in p["reason"]
    assert rig.count(transactions) == 0


def test_statement() -> None:
    lines = parse_statement("Id,Date,Amount,Currency,Status,External Id,From\n"
                            "1000000000,2025-03-03T10:00:00,100,UGX,SUCCESSFUL,"
                            "0f8fad5b-d9cb-469f-a165-70867728950e,256772000111\n")
    assert lines[0].provider_id == "1000000000" and lines[0].status == "Completed"
