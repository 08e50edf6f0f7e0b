"""A sale that PostgreSQL gives up to another transaction (a real deadlock between two
connections) is redone whole and sold exactly once; when the redos run out it answers 503
UNAVAILABLE (retry the same id), never 500, and nothing is stored.  On SQLite the write lock
is taken up front, so there is no deadlock to lose: the same sale simply sells."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from sts.errors import DatabaseBusy, InputError
from sts.vending.storage.database import CONTENTION, contention
from sts.vending.storage.tables import meters, transactions, vendors
from tests.fixtures import Demo


def _waiting_pids(conn: sa.Connection, pid: int) -> list[int]:
    """Backends (other than `pid`) waiting for a lock `pid` holds."""
    rows = conn.exec_driver_sql(
        "SELECT a.pid FROM pg_stat_activity a WHERE a.pid <> %(me)s AND "
        "%(me)s = ANY(pg_blocking_pids(a.pid))", {"me": pid}).all()
    return [r.pid for r in rows]


def _sale_in_a_deadlock(demo: Demo, pid: str) -> Any:
    """Sell while another connection holds the vendor's row (the sale's last lock) and then
    asks for the meter's row (the sale's first): a lock cycle PostgreSQL breaks by giving up
    the sale, which waited first.  Returns the sale's answer."""
    db = demo.service.db
    meter = demo.meters[0]
    other = sa.create_engine(db.engine.url)
    answer: list[Any] = []
    try:
        with other.connect() as conn:
            # only the sale's backend looks for the cycle (it waits first, for 1 s by default)
            conn.exec_driver_sql("SET deadlock_timeout = '30s'")
            me = conn.scalar(sa.text("SELECT pg_backend_pid()"))
            conn.execute(sa.update(vendors).values(float_balance=vendors.c.float_balance))
            seller = threading.Thread(target=lambda: answer.append(demo.buy(meter, "20", pid)))
            seller.start()
            deadline = time.monotonic() + 30
            while not _waiting_pids(conn, me):  # polling a real server until the sale waits
                assert time.monotonic() < deadline, "the sale never waited for the vendor row"
                time.sleep(0.01)
            # the sale holds the meter's row now: asking for it closes the cycle
            conn.execute(sa.select(meters.c.id).where(meters.c.pan == meter).with_for_update())
            conn.commit()
            seller.join(60)
            assert not seller.is_alive()
    finally:
        other.dispose()
    return answer[0]


@pytest.mark.postgres
def test_a_sale_that_lost_a_deadlock_is_redone_or_answers_busy(demo: Demo) -> None:
    db = demo.service.db
    if db.is_sqlite:
        pytest.skip("SQLite takes its write lock up front: a sale never waits holding a lock")
    waits: list[float] = []
    db.pause = waits.append  # counts the redos without waiting for time
    with db.read() as conn:
        before = Decimal(conn.scalar(sa.select(vendors.c.float_balance)))

    db.attempts = 1  # no redo: the deadlock goes out as 503, and nothing was stored
    lost = str(uuid.uuid4())
    r = _sale_in_a_deadlock(demo, lost)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
    assert r.json()["code"] == "UNAVAILABLE" and "retry the same request" in r.json()["message"]
    assert waits == []

    db.attempts = 5
    r = _sale_in_a_deadlock(demo, lost)  # the same id again: now sold, once
    assert r.status_code == 201, r.text
    # lost at least once, maybe again (the redo may take the meter's row before the other
    # connection wakes up for it: the same cycle), and sold before the attempts ran out
    assert 1 <= len(waits) < db.attempts and all(0 < w <= 0.5 for w in waits), waits
    with db.read() as conn:
        sold = conn.execute(sa.select(transactions.c.request_id, transactions.c.amount)
                            .where(transactions.c.kind == "sale")).all()
        after = Decimal(conn.scalar(sa.select(vendors.c.float_balance)))
    assert [(s.request_id, Decimal(s.amount)) for s in sold] == [(lost, Decimal("20"))]
    assert before - after == Decimal("20")


def test_retrying_redoes_only_what_was_given_up(demo: Demo) -> None:
    """The frame on both databases: work given up (DatabaseBusy) is redone, with growing
    waits, until it is done or the attempts run out; any other error goes out at once."""
    db = demo.service.db
    waits: list[float] = []
    db.pause = waits.append
    runs: list[int] = []

    def flaky() -> str:
        runs.append(1)
        if len(runs) < 3:
            raise DatabaseBusy("given up")
        return "done"

    assert db.retrying(flaky) == "done" and len(runs) == 3 and len(waits) == 2
    runs.clear()
    db.attempts = 2
    with pytest.raises(DatabaseBusy):
        db.retrying(flaky)
    assert len(runs) == 2

    def broken() -> None:
        runs.append(1)
        raise InputError("bad", field="x")

    runs.clear()
    with pytest.raises(InputError):
        db.retrying(broken)
    assert len(runs) == 1


def test_contention_is_known_by_its_sqlstate() -> None:
    class Orig(Exception):
        sqlstate = "40P01"

    class Wrapped(Exception):
        orig = Orig()

    assert contention(Wrapped()) == CONTENTION["40P01"]
    Wrapped.orig.sqlstate = "23505"  # a unique violation is not contention
    assert contention(Wrapped()) is None and contention(ValueError()) is None
