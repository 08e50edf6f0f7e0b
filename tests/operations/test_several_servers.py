"""Three `sts serve` processes on one PostgreSQL database share everything through it (issue
21, point 2): purchases sent over all three, with repeated ids sent to different servers and
one server SIGKILLed mid-load, leave one sale per id, each meter's TIDs strictly increasing
and the float exact; a web session made on one server is valid on the others; wrong
passwords count towards one lockout whichever server they reach; every SMS job is delivered
(the three servers' dispatchers share the outbox through leases), and sent to the phone once:
a job resent after the kill carries its idempotency key, which the gateway honours.

The issue asks for 3,000 purchases; CI sends 300 (3,000 takes several minutes on a 2-core
runner, where the whole suite must stay under 15).  STS_SCALE_PURCHASES=3000 runs the full
size (with a tenth of them repeated) and prints its time and sales per second."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from sts.vending.access.operators import LOCK_AFTER
from sts.vending.storage.database import Database
from tests.operations import rig
from tests.support.carriers import Gateway
from tests.support.server import Server

pytestmark = pytest.mark.slow
# CI: 300; STS_SCALE_PURCHASES=3000 for the size (benchmarks/bench_servers.py also
# sends 3,000, without the kill)
PURCHASES = int(os.environ.get("STS_SCALE_PURCHASES", "300"))
REPEATS = PURCHASES // 10


def _sign_in(url: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30) as web:
        page = web.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        return web.post("/login", data={"csrf": csrf.group(1), "username": username,
                                        "password": password, "next": ""})


def _failed_count(db_url: str, username: str) -> Any:
    from sts.vending.storage.tables import operators
    from sts.vending.storage.tables_office import operator_credentials as oc

    return rig.scalar(db_url, sa.select(oc.c.failed_count).join(
        operators, operators.c.id == oc.c.operator_id).where(operators.c.username == username))


def test_three_servers_one_database(db_url: str, kek_file: str, tmp_path: Path) -> None:
    if Database(db_url).is_sqlite:
        pytest.skip("several hosts share PostgreSQL; a SQLite file belongs to one host")
    prep = rig.prepare(db_url, kek_file)
    gateway = Gateway()
    config = rig.delivery_config(tmp_path / "delivery.toml", gateway.url, lease=2.0)
    servers = [Server(db_url, kek_file, log=tmp_path / f"server{i}.log",
                      extra_env={"STS_DELIVERY_CONFIG": config}) for i in range(3)]
    try:
        for s in servers:
            s.launch()
        for s in servers:
            s.wait_ready()
        urls = [s.url for s in servers]

        # a session made on one server is valid on the others
        vendor = prep.operators["vendor"]
        signed = _sign_in(urls[0], vendor["username"], vendor["password"])
        assert signed.status_code == 303 and "sts_session" in signed.cookies
        for url in urls[1:]:
            page = httpx.get(url + "/pos", cookies={"sts_session": signed.cookies["sts_session"]})
            assert page.status_code == 200 and vendor["username"] in page.text
            assert httpx.get(url + "/pos").status_code in (303, 307)  # and not without it

        # wrong passwords count towards one lockout whichever server they reach
        sup = prep.operators["supervisor"]
        for i in range(LOCK_AFTER):
            assert _sign_in(urls[i % 3], sup["username"], "wrong password").status_code == 401
        assert _failed_count(db_url, sup["username"]) == LOCK_AFTER
        assert _sign_in(urls[2], sup["username"], sup["password"]).status_code == 401  # locked

        # purchases over the three servers, some ids twice; server 2 SIGKILLed mid-load
        plan = rig.plan(prep.meters, PURCHASES, 3, repeats=REPEATS)
        scale = max(1.0, PURCHASES / 300)  # the waits grow with the opt-in size
        started = time.monotonic()
        load = rig.Load(urls, prep.vendor_key, plan, threads=9, sms=True).start()
        deadline = time.monotonic() + 120 * scale
        while load.answered() < PURCHASES // 3:  # polling real servers until under way
            assert time.monotonic() < deadline, "the servers sold too little"
            time.sleep(0.01)
        servers[2].kill()
        outcomes = load.join(300 * scale)
        took = time.monotonic() - started
        made = load.answered()  # 201: a new sale (200: a repeat answered)
        print(f"\n{len(outcomes)} purchase requests in {took:.1f} s over 3 servers (one "
              f"killed): {made} sales made, {made / took:.1f} sales/s, "
              f"{sum(o.status is not None for o in outcomes) / took:.1f} answers/s")
        # what went to the killed server unanswered, the client sends again to another one
        lost = [o for o in outcomes if o.status is None]
        assert lost and all(o.server == 2 for o in lost)
        by_id = {pid: (meter, amount) for pid, meter, amount, _ in plan}
        with httpx.Client(timeout=60) as client:
            again = [rig.buy(client, urls[0], prep.vendor_key, o.purchase_id,
                             *by_id[o.purchase_id], 0, sms=True) for o in lost]
        answers = [o for o in outcomes + again if o.status is not None]
        assert {o.status for o in answers} <= {200, 201}  # 200: a repeat of a sale made
        tokens: dict[str, Any] = {}
        for o in answers:  # a repeated id answers the same sale, whichever server
            assert tokens.setdefault(o.purchase_id, o.body["tokens"]) == o.body["tokens"]
        assert set(tokens) == set(by_id)

        stored = rig.check_ledger(db_url, prep.float_before)
        assert len(stored) == len(by_id) == PURCHASES

        # every SMS job delivered by the surviving dispatchers (the killed one's leases expire)
        def all_delivered() -> bool:
            jobs = rig.delivery_rows(db_url)
            return len(jobs) == PURCHASES and all(j.status == "delivered" for j in jobs)

        deadline = time.monotonic() + 90 * scale
        while not all_delivered():  # polling the database until the dispatchers are done
            assert time.monotonic() < deadline, "SMS jobs left undelivered"
            time.sleep(0.05)
    finally:
        for s in servers:
            s.stop()
        gateway.close()
    asked = [_purchase_id(r["body"]) for r in gateway.requests]
    assert set(asked) == set(by_id)
    # at least once to the gateway; a repeat only from the batch the killed server had claimed
    assert len(asked) - len(set(asked)) <= 20
    # and a repeat carries its job's idempotency key ...
    keys: dict[str, str] = {}
    for r in gateway.requests:
        key = r["headers"].get("Idempotency-Key", "")
        assert key.startswith("sts-delivery-"), r["headers"]
        assert keys.setdefault(_purchase_id(r["body"]), key) == key
    assert len(set(keys.values())) == PURCHASES
    # ... so the gateway, which honours it, sent each purchase's SMS to the phone exactly once
    sent = sorted(_purchase_id(r["body"]) for r in gateway.sent)
    assert sent == sorted(by_id)
    assert all(_to(r["body"]) == rig.PHONE for r in gateway.sent)


def _purchase_id(body: str) -> str:
    return str(json.loads(body)["id"])


def _to(body: str) -> str:
    return str(json.loads(body)["to"])
