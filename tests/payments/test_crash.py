"""The server SIGKILLed while confirmations are in flight, then restarted and the same
confirmations sent again (Daraja's retries, or the statement): each payment sold once."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from sts.vending.storage.tables import transactions
from sts.vending.storage.tables_delivery import deliveries
from sts.vending.storage.tables_payments import payments
from tests.payments.conftest import Momo, confirmation
from tests.support.server import Server


def post(url: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(url + "/pay/c2b/confirmation", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, http.client.HTTPException):
        return 0  # the server died under it (before or in the middle of its answer)


@pytest.mark.slow
def test_sigkill_mid_flight_then_restart_sells_each_once(momo: Momo, db_url: str,
                                                         kek_file: str) -> None:
    bodies = [confirmation(f"RKKILL{i:04d}", momo.meters[i % len(momo.meters)])
              for i in range(40)]
    server = Server(db_url, kek_file, extra_env={"STS_DB_POOL": "8"}).start()
    answered = threading.Semaphore(0)

    def send(body: dict[str, Any]) -> int:
        status = post(server.url, body)
        answered.release()
        return status

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(send, b) for b in bodies]
            for _ in range(8):  # a few answered, many in flight: kill it now
                assert answered.acquire(timeout=120)
            server.kill()
            first = [f.result() for f in futures]
        assert 0 in first or first.count(200) < 40  # the kill really cut some off
        server = Server(db_url, kek_file).start()
        again = [post(server.url, b) for b in bodies]
        assert again == [200] * 40
    finally:
        server.kill()
    db = momo.service.db
    with db.read() as conn:
        states = dict(conn.execute(sa.select(payments.c.provider_id, payments.c.state)).all())
        n_sales = conn.scalar(sa.select(sa.func.count()).select_from(transactions)
                              .where(transactions.c.kind == "sale"))
        n_sms = conn.scalar(sa.select(sa.func.count()).select_from(deliveries)
                            .where(deliveries.c.channel == "sms"))
    assert states == {b["TransID"]: "sold" for b in bodies}
    assert n_sales == 40 and n_sms == 40
