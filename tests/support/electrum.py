"""`Switch`, a client that speaks the Electrum interface the way a retailer's switch does, and
the message parts it sends (an originator, an envelope, a message id)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fixtures import Demo

BASE = "/prepaidutility/v3"
ORIGINATOR = {
    "institution": {"id": "0001", "name": "Example Retail Group"},
    "terminalId": "T0000001",
    "merchant": {
        "merchantType": "5411",
        "merchantId": "000000000012345",
        "merchantName": {"name": "Example Store", "city": "Johannesburg", "region": "GP",
                         "country": "ZA"},
    },
    "operatorId": "cashier-7",
}


def drn_of(pan: str) -> str:
    """The number printed on the meter (the DRN) for a MeterPAN."""
    from sts.codec.pan import parse_pan

    return parse_pan(pan).drn


def new_id() -> str:
    return str(uuid.uuid4())


def envelope(mid: str, **extra: Any) -> dict[str, Any]:
    """A full Transaction envelope, with every optional field set, to check the echo."""
    return {
        "id": mid,
        "time": "2025-03-03T10:00:00.123+02:00",
        "originator": ORIGINATOR,
        "client": {"id": "0001", "name": "Example Retail Group"},
        "settlementEntity": {"id": "0002", "name": "Settlement Bank"},
        "receiver": {"id": "9001", "name": "STS Vending"},
        "thirdPartyIdentifiers": [{"institutionId": "0001",
                                   "transactionIdentifier": "POS-" + mid[:8]}],
        "basketRef": "basket-1", "tranType": "GOODS_AND_SERVICES", "srcAccType": "DEFAULT",
        "destAccType": "DEFAULT", "stan": "123456", "rrn": "000000123456",
        **extra,
    }


@dataclass
class Switch:
    """A POS switch: Basic credentials, message builders, and the interface's calls."""

    demo: Demo
    username: str
    password: str
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    http: Any = None  # an httpx client on a real server; default: the in-process TestClient

    @property
    def headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def post(self, path: str, body: Any, **kw: Any) -> Any:
        client = self.http if self.http is not None else self.demo.client
        return client.post(BASE + path, json=body, headers=self.headers, **kw)

    def purchase_request(self, meter_id: str, amount: Any, pid: str | None = None,
                         currency: str = "710", **extra: Any) -> dict[str, Any]:
        pid = pid or new_id()
        return envelope(pid, meter={"meterId": meter_id},
                        purchaseAmount={"amount": amount, "currency": currency},
                        utilityType="ELECTRICITY",
                        tenders=[{"tenderType": "CASH",
                                  "amount": {"amount": amount, "currency": currency}}], **extra)

    def buy(self, meter_id: str, amount: Any = 10000, pid: str | None = None, **extra: Any) -> Any:
        body = self.purchase_request(meter_id, amount, pid, **extra)
        self.sent[body["id"]] = body
        return self.post(f"/tokenPurchases/{body['id']}", body)

    def retry(self, pid: str, new_envelope: bool = True) -> Any:
        body = dict(self.sent[pid])
        if new_envelope:
            body["id"] = new_id()
        return self.post(f"/tokenPurchases/{pid}/retry", body)

    def advice(self, pid: str, aid: str | None = None, tpis: list[Any] | None = None,
               **extra: Any) -> dict[str, Any]:
        return {"id": aid or new_id(), "requestId": pid, "time": "2025-03-03T10:00:41.5Z",
                "thirdPartyIdentifiers": tpis if tpis is not None else [
                    {"institutionId": "0001", "transactionIdentifier": "POS-x"}],
                "stan": "123457", "rrn": "000000123457", **extra}

    def confirm(self, pid: str, aid: str | None = None, **extra: Any) -> Any:
        body = self.advice(pid, aid, tenders=[{"tenderType": "CASH",
                                              "amount": {"amount": 10000,
                                                         "currency": "710"}}], **extra)
        return self.post(f"/tokenPurchases/{pid}/confirmations/{body['id']}", body)

    def reverse(self, pid: str, aid: str | None = None, reason: str = "CANCELLED") -> Any:
        body = self.advice(pid, aid, reversalReason=reason)
        return self.post(f"/tokenPurchases/{pid}/reversals/{body['id']}", body)

    def lookup(self, meter_id: str, lid: str | None = None) -> Any:
        lid = lid or new_id()
        return self.post(f"/meterLookups/{lid}", envelope(lid, meter={"meterId": meter_id}))


def make_switch(demo: Demo, *, vendor: str = "Demo Vendor", **kw: Any) -> Switch:
    from sts.vending.access import credentials

    user, password = credentials.issue(demo.service.db, vendor=vendor,
                                       username=f"switch-{uuid.uuid4().hex[:8]}", **kw)
    return Switch(demo, user, password)
