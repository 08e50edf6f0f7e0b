"""Exactly once, XMLVend's way, against a real `sts serve`: 20 concurrent repeats of one credit
vend make one sale; a server killed (SIGKILL) between the sale and its answer, then restarted,
answers a last-response advice with the original answer byte for byte; a killed original that
never sold is voided before LastResponseEx, and a running one answers a retryable fault."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from sts.vending.storage.database import normalise_url
from sts.vending.storage.tables import transactions
from sts.vending.storage.tables_xmlvend import client_exchanges
from tests.fixtures import known_pan
from tests.support.server import Server
from tests.support.xmlvend import Answer, Client, drn_of, register

pytestmark = pytest.mark.slow


class Http:
    """httpx in the TestClient's shape, for `Client`."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url, self.timeout = url, timeout

    def post(self, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(self.url + path, content=content, headers=headers,
                          timeout=self.timeout)


@pytest.fixture
def setup(db_url: str, kek_file: str) -> Iterator[tuple[str, str]]:
    from sts.vending.clock import wall_clock
    from sts.vending.config import Settings, open_service
    from tests.fixtures import make_demo

    svc = open_service(Settings(db_url=db_url, kek_file=kek_file), run_migrations=True)
    register(make_demo(svc, wall_clock))  # type: ignore[arg-type]
    svc.db.dispose()
    yield db_url, kek_file


def count(db_url: str, table: Any, *where: Any) -> int:
    eng = create_engine(normalise_url(db_url))
    try:
        with eng.connect() as conn:
            n = conn.scalar(select(func.count()).select_from(table).where(*where))
            assert n is not None  # a count has a row
            return int(n)
    finally:
        eng.dispose()


def stored_payloads(db_url: str) -> list[str]:
    eng = create_engine(normalise_url(db_url))
    try:
        with eng.connect() as conn:
            return [r[0] for r in conn.execute(select(client_exchanges.c.payload).where(
                client_exchanges.c.kind == "creditVendReq"))]
    finally:
        eng.dispose()


def inner(text: str, root: str) -> str:
    """The content of a payload's root element `root` (as sent)."""
    start = text.index(">", text.index(f":{root} ") if f":{root} " in text
                       else text.index(f"<{root} ")) + 1
    end = text.rindex("</", 0, text.rindex(f"{root}>"))
    return text[start:end]


def wait_for(path: Path, proc: Any, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not path.exists():
        assert proc.poll() is None, "the server died"
        assert time.monotonic() < end, "the server never reached the halt point"
        time.sleep(0.02)  # polling for the marker, with a deadline


def test_twenty_concurrent_repeats_make_one_sale(setup: tuple[str, str], tmp_path: Path) -> None:
    db_url, kek = setup
    srv = Server(db_url, kek, workers=2, log=tmp_path / "server.log").start()
    try:
        c = Client(Http(srv.url))
        dt, un = c.msg()
        msno = drn_of(known_pan())

        def one(_: int) -> Answer:
            return c.vend(msno, "20", dt=dt, un=un)

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(one, range(20)))
        ok = [a for a in answers if a.status == 200]
        busy = [a for a in answers if a.status != 200]
        assert all("VD.17020008" in a.text or "busy" in a.text for a in busy), busy[:1]
        assert ok and len({a.text for a in ok}) == 1
        final = c.vend(msno, "20", dt=dt, un=un)
        assert final.text == ok[0].text
        assert count(db_url, transactions, transactions.c.kind == "sale") == 1
    finally:
        srv.stop()


@pytest.mark.parametrize("point", ["after_sale", "after_store"])
def test_killed_between_sale_and_answer(setup: tuple[str, str], tmp_path: Path,
                                        point: str) -> None:
    db_url, kek = setup
    marker = tmp_path / "halted"
    srv = Server(db_url, kek, log=tmp_path / "server.log", extra_env={
        "STS_XMLVEND_HALT_AT": point, "STS_XMLVEND_HALT_FILE": str(marker)}).start()
    msno = drn_of(known_pan())
    c = Client(Http(srv.url, timeout=120))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(c.vend, msno, "20")
        try:
            assert srv.proc is not None
            wait_for(marker, srv.proc)
            srv.kill()  # SIGKILL: the client never gets its answer
        finally:
            if srv.proc is not None and srv.proc.poll() is None:
                srv.kill()
        with pytest.raises(httpx.HTTPError):
            pending.result()
    dt, un = c.last_msg
    before = stored_payloads(db_url)
    srv = Server(db_url, kek, log=tmp_path / "server2.log").start()
    try:
        c.http = Http(srv.url)
        adv = c.advice("LastRespAdviceReq", dt, un)
        assert adv.status == 200, adv.text
        again = c.advice("LastRespAdviceReq", dt, un)
        repeat = c.vend(msno, "20", dt=dt, un=un)
        assert repeat.status == 200
        original = stored_payloads(db_url)
        assert len(original) == 1 and original[0]
        if point == "after_store":
            assert before == original  # stored before it was (never) sent
        content = inner(original[0], "creditVendResp")
        assert content in adv.text and content in again.text and content in repeat.text
        assert inner(repeat.text, "creditVendResp") == content
        assert count(db_url, transactions, transactions.c.kind == "sale") == 1
    finally:
        srv.stop()


def test_original_that_never_sold(setup: tuple[str, str], tmp_path: Path) -> None:
    db_url, kek = setup
    marker = tmp_path / "halted"
    srv = Server(db_url, kek, log=tmp_path / "server.log", extra_env={
        "STS_XMLVEND_HALT_AT": "before_sale", "STS_XMLVEND_HALT_FILE": str(marker)}).start()
    msno = drn_of(known_pan())
    c = Client(Http(srv.url, timeout=120))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(c.vend, msno, "20")
        try:
            assert srv.proc is not None
            wait_for(marker, srv.proc)
            dt, un = c.last_msg
            running = Client(Http(srv.url))
            adv = running.advice("LastRespAdviceReq", dt, un)
            assert adv.status == 500 and "VD.17020008" in adv.text  # retryable
        finally:
            srv.kill()
        with pytest.raises(httpx.HTTPError):
            pending.result()
    srv = Server(db_url, kek, log=tmp_path / "server2.log",
                 extra_env={"STS_XMLVEND_LEASE": "0"}).start()
    try:
        c.http = Http(srv.url)
        adv = c.advice("LastRespAdviceReq", dt, un)
        assert adv.fault_type == "LastResponseEx", adv.text
        late = c.vend(msno, "20", dt=dt, un=un)
        assert late.fault_type == "BusinessRuleEx"
        assert count(db_url, transactions) == 0
    finally:
        srv.stop()
