"""A rig for the operations tests and the several-servers benchmark: a demo database ready for
real `sts serve` processes (tests/support/server.py), purchases sent from threads, and what
the database holds afterwards."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from sts.vending.config import Settings, open_service
from sts.vending.registry.admin import Registry, fill_demo
from sts.vending.registry.operators import demo_passwords
from sts.vending.storage.database import normalise_url
from sts.vending.storage.tables import meters, transactions, vendors
from sts.vending.storage.tables_delivery import deliveries

PHONE = "+27820000001"


@dataclass
class Prepared:
    db_url: str
    kek_file: str
    vendor_key: str
    meters: list[str]
    operators: dict[str, dict[str, str]]
    float_before: Decimal


def prepare(db_url: str, kek_file: str, *, meters_count: int = 6, ami: bool = False) -> Prepared:
    """A migrated database with the demo utility; its meters sell without AMI (deliveries go
    by SMS when a purchase asks)."""
    svc = open_service(Settings(db_url=db_url, kek_file=kek_file), run_migrations=True)
    try:
        reg = Registry(svc.db, svc.sm, actor="test")
        info = fill_demo(reg, production_tables=False, meters_count=meters_count)
        if not ami:
            with svc.db.begin() as conn:
                conn.execute(sa.update(meters).values(ami=False))
        passwords = demo_passwords(reg)
        with svc.db.read() as conn:
            balance = conn.scalar(sa.select(vendors.c.float_balance))
            assert balance is not None, "fill_demo made no vendor"
            before = Decimal(balance)
    finally:
        svc.db.dispose()
    return Prepared(db_url, kek_file, info["api_keys"]["vendor"], info["meters"], passwords,
                    before)


def delivery_config(path: Path, sms_url: str, *, lease: float = 2.0) -> str:
    """A delivery config for the test SMS gateway: quick polls, short leases, the purchase id
    in every message (so the gateway can count deliveries per purchase)."""
    path.write_text(
        f"[dispatch]\npoll = 0.05\nlease = {lease}\nbatch = 20\n"
        "[retry]\nbase = 0.05\nfactor = 2\nmax_delay = 0.5\nmax_attempts = 50\n"
        f'[sms]\nurl = "{sms_url}"\n'
        'fields = {to = "{to}", text = "{text}", id = "{purchase_id}"}\n')
    return str(path)


@dataclass
class Outcome:
    purchase_id: str
    server: int
    status: int | None  # None: no answer (connection refused or closed)
    done_at: float
    body: dict[str, Any] = field(default_factory=dict)


def buy(client: httpx.Client, url: str, key: str, pid: str, meter: str, amount: str,
        server: int, *, sms: bool = False) -> Outcome:
    body: dict[str, Any] = {"meter": meter, "amount": amount}
    if sms:
        body["deliver"] = [{"channel": "sms", "to": PHONE}]
    try:
        r = client.post(f"{url}/v1/purchases/{pid}", json=body,
                        headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError:
        return Outcome(pid, server, None, time.monotonic())
    answer = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    return Outcome(pid, server, r.status_code, time.monotonic(), answer)


class Load:
    """Threads sending purchases from a shared list of (purchase id, meter, amount, server)
    until it is used up or `stop` is set; every outcome is kept."""

    def __init__(self, urls: list[str], key: str, plan: list[tuple[str, str, str, int]], *,
                 threads: int, sms: bool = False) -> None:
        self.urls, self.key, self.sms = urls, key, sms
        self.plan = list(reversed(plan))
        self.outcomes: list[Outcome] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def _next(self) -> tuple[str, str, str, int] | None:
        with self._lock:
            return self.plan.pop() if self.plan and not self.stop.is_set() else None

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while (item := self._next()) is not None:
                pid, meter, amount, server = item
                out = buy(client, self.urls[server], self.key, pid, meter, amount, server,
                          sms=self.sms)
                with self._lock:
                    self.outcomes.append(out)

    def answered(self) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if o.status == 201)

    def join(self, timeout: float = 300) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            assert not t.is_alive(), "load thread still running"
        return self.outcomes


def plan(meters_list: list[str], count: int, servers: int, *, repeats: int = 0
         ) -> list[tuple[str, str, str, int]]:
    """`count` purchases over the meters and servers; `repeats` of them sent again (same id,
    same body) to another server."""
    out = []
    for i in range(count):
        out.append((str(uuid.uuid4()), meters_list[i % len(meters_list)], f"{10 + i % 7}",
                    i % servers))
    for i in range(repeats):
        pid, meter, amount, server = out[(i * 7) % count]
        out.insert(min(len(out), (i * 7) % count + 3 + i % 5),
                   (pid, meter, amount, (server + 1 + i % max(1, servers - 1)) % servers))
    return out


def sales(db_url: str) -> list[Any]:
    """Every sale: request id, meter, amount, TID (from the stored answer), seq."""
    import json

    eng = sa.create_engine(normalise_url(db_url))
    try:
        with eng.connect() as conn:
            rows = conn.execute(sa.select(transactions.c.seq, transactions.c.request_id,
                                          transactions.c.meter_id, transactions.c.amount,
                                          transactions.c.response, transactions.c.kind)
                                .where(transactions.c.kind == "sale")
                                .order_by(transactions.c.seq)).all()
    finally:
        eng.dispose()
    return [(r.seq, r.request_id, r.meter_id, Decimal(r.amount), json.loads(r.response))
            for r in rows]


def scalar(db_url: str, stmt: Any) -> Any:
    eng = sa.create_engine(normalise_url(db_url))
    try:
        with eng.connect() as conn:
            return conn.execute(stmt).scalar()
    finally:
        eng.dispose()


def delivery_rows(db_url: str) -> list[Any]:
    eng = sa.create_engine(normalise_url(db_url))
    try:
        with eng.connect() as conn:
            return list(conn.execute(sa.select(deliveries.c.request_id, deliveries.c.status,
                                               deliveries.c.lease_until)))
    finally:
        eng.dispose()


def check_ledger(db_url: str, float_before: Decimal) -> list[Any]:
    """What must hold whatever servers sold: one sale per purchase id, each meter's TIDs
    strictly increasing in the order the sales were stored, the vendor's float exactly the
    opening balance less the sales.  Returns the sales."""
    stored = sales(db_url)
    ids = [s[1] for s in stored]
    assert len(ids) == len(set(ids)), "a purchase id sold twice"
    last: dict[int, int] = {}
    for _seq, pid, meter_id, _amount, answer in stored:
        tids = [t["tid"] for t in answer["tokens"] if t.get("tid") is not None]
        assert tids, pid
        assert min(tids) > last.get(meter_id, -1), f"TID not increasing on meter {meter_id}"
        last[meter_id] = max(tids)
    now = Decimal(scalar(db_url, sa.select(vendors.c.float_balance)))
    assert float_before - now == sum(s[3] for s in stored), "the float is not exact"
    return stored
