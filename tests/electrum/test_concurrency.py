"""Exactly once the interface's way, against a real `sts serve` (2 worker processes): 20
concurrent retries, duplicate purchases and duplicate advices make one sale; a SIGKILL between
purchase and confirmation loses nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from sts.vending.storage.tables import tokens, transactions
from sts.vending.storage.tables_clients import sale_advices
from tests.fixtures import known_pan, make_demo
from tests.support.electrum import Switch, make_switch, new_id
from tests.support.server import Server

N = 20


@pytest.fixture
def served(service: Any, clock: Any, settings: Any, tmp_path: Path) -> Iterator[
        tuple[Switch, Server]]:
    demo = make_demo(service, clock)
    switch = make_switch(demo)
    server = Server(settings.db_url, settings.kek_file, workers=2,
                    log=tmp_path / "server.log").start(timeout=180)
    yield switch, server
    server.stop()


def together(server: Server, switch: Switch, calls: list[tuple[str, dict[str, Any]]]
             ) -> list[httpx.Response]:
    barrier = threading.Barrier(len(calls))

    def send(call: tuple[str, dict[str, Any]]) -> httpx.Response:
        with httpx.Client(base_url=server.url + "/prepaidutility/v3", headers=switch.headers,
                          timeout=60) as c:
            barrier.wait()
            return c.post(call[0], json=call[1])

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(send, calls))


def count(switch: Switch, table: Any) -> int:
    with switch.demo.service.db.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


@pytest.mark.slow
def test_exactly_once_under_concurrency_and_sigkill(served: tuple[Switch, Server]) -> None:
    """One server start per database for all three scenarios (server starts are slow)."""
    retries_and_duplicates_make_one_sale(*served)
    reversals_and_confirmations_decide_once(*served)
    sigkill_between_purchase_and_confirmation(*served)


def retries_and_duplicates_make_one_sale(switch: Switch, server: Server) -> None:
    body = switch.purchase_request(known_pan(), 2500)
    pid = body["id"]
    retries = together(server, switch, [(f"/tokenPurchases/{pid}/retry", dict(body, id=new_id()))
                                        for _ in range(N)])
    assert {r.status_code for r in retries} == {202}, [r.text for r in retries]
    assert len({r.json()["tokens"][0]["token"] for r in retries}) == 1
    assert count(switch, tokens) == 1 and count(switch, transactions) == 1

    other = switch.purchase_request(known_pan(), 3000)
    creates = together(server, switch, [(f"/tokenPurchases/{other['id']}", other)] * N)
    codes = sorted(r.status_code for r in creates)
    assert codes == [201] + [400] * (N - 1)
    assert {r.json()["errorType"] for r in creates if r.status_code == 400} == {"DUPLICATE_RECORD"}
    assert count(switch, tokens) == 2

    aid = new_id()
    same = switch.advice(pid, aid, tenders=[])
    advices = together(server, switch,
                       [(f"/tokenPurchases/{pid}/confirmations/{aid}", same)] * (N // 2)
                       + [(f"/tokenPurchases/{pid}/confirmations/{a['id']}", a)
                          for a in (switch.advice(pid, tenders=[]) for _ in range(N // 2))])
    assert {r.status_code for r in advices} == {202}, [r.text for r in advices]
    assert count(switch, sale_advices) == 1 and count(switch, tokens) == 2


def reversals_and_confirmations_decide_once(switch: Switch, server: Server) -> None:
    sale = switch.buy(known_pan(), 2000)
    pid = sale.json()["id"]
    calls = []
    for i in range(N):
        extra: dict[str, Any] = {"tenders": []} if i % 2 else {"reversalReason": "TIMEOUT"}
        adv = switch.advice(pid, **extra)
        kind = "confirmations" if i % 2 else "reversals"
        calls.append((f"/tokenPurchases/{pid}/{kind}/{adv['id']}", adv))
    results = together(server, switch, calls)
    confirmed = [r for r, c in zip(results, calls, strict=True) if "confirmations" in c[0]]
    reversed_ = [r for r, c in zip(results, calls, strict=True) if "reversals" in c[0]]
    # one side won: all of its advices were accepted and all of the other's refused
    assert ({r.status_code for r in confirmed}, {r.status_code for r in reversed_}) in (
        ({202}, {400}), ({400}, {202}))
    with switch.demo.service.db.read() as conn:
        status = conn.scalar(select(transactions.c.status).where(
            transactions.c.request_id == pid))
    assert status == ("reversed" if reversed_[0].status_code == 202 else "completed")


def sigkill_between_purchase_and_confirmation(switch: Switch, server: Server) -> None:
    sold = count(switch, tokens)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        switch.http = c
        sale = switch.buy(known_pan(), 2500)
        assert sale.status_code == 201, sale.text
    server.kill()
    server.start(timeout=180)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        switch.http = c
        pid = sale.json()["id"]
        conf = switch.confirm(pid)
        assert conf.status_code == 202, conf.text
        assert switch.retry(pid).json()["tokens"] == sale.json()["tokens"]
    assert count(switch, tokens) == sold + 1
