"""Fixtures for mobile money: the shared vending fixtures (`tests.fixtures`: SQLite and
PostgreSQL), plus a demo with an "M-Pesa" channel vendor and customers' numbers on record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from tests.fixtures import Demo, FakeClock, make_demo  # the fixtures come with the plugin

CHANNEL = "M-Pesa"
SHORTCODE = "600000"


@dataclass
class Momo:
    demo: Demo
    caller: Any  # the channel's caller
    client: Any  # the app, called from loopback (the demo's allowed network)

    @property
    def service(self) -> Any:
        return self.demo.service

    @property
    def meters(self) -> list[str]:
        return self.demo.meters


@pytest.fixture
def momo(service: Any, clock: FakeClock) -> Momo:
    from sts.vending.registry.admin import DEMO_SGC
    from sts.vending.storage.tables import customers

    demo = make_demo(service, clock)
    demo.registry.add_vendor(CHANNEL, float_balance="1000000", sgcs=[DEMO_SGC])
    with service.db.begin() as conn:  # every demo customer has a number on record
        for i in range(1, 6):
            conn.execute(sa.update(customers).where(customers.c.account_no == f"ACC{i:04d}")
                         .values(phone=f"+25471100000{i}"))
    from fastapi.testclient import TestClient

    from sts.server.app import create_app

    client = TestClient(create_app(service), raise_server_exceptions=False,
                        client=("127.0.0.1", 50000))
    return Momo(demo, service.channel_caller(CHANNEL, "mpesa"), client)


def confirmation(trans_id: str, meter: str, amount: str = "100.00", *,
                 msisdn: str = "254722000111", shortcode: str = SHORTCODE) -> dict[str, Any]:
    """A C2B confirmation body as Daraja sends it."""
    return {"TransactionType": "Pay Bill", "TransID": trans_id, "TransTime": "20250303100000",
            "TransAmount": amount, "BusinessShortCode": shortcode, "BillRefNumber": meter,
            "InvoiceNumber": "", "OrgAccountBalance": "49197.00", "ThirdPartyTransID": "",
            "MSISDN": msisdn, "FirstName": "JOHN", "MiddleName": "", "LastName": "DOE"}
