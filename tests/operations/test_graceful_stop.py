"""SIGTERM stops `sts serve` without losing a sale (issue 21, point 6), on SQLite and
PostgreSQL: a real server (one process, or a supervisor with `--workers 2`) with purchases in
flight when the signal arrives answers each of them completely or refuses it before anything
is written, gives back its delivery leases and exits 0."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.operations import rig
from tests.support.carriers import Gateway
from tests.support.server import Server

pytestmark = pytest.mark.slow


def test_sigterm_finishes_what_is_in_flight_and_exits_0(db_url: str, kek_file: str,
                                                         tmp_path: Path) -> None:
    _stop_under_load(db_url, kek_file, tmp_path, workers=1, purchases=400, threads=12)


def test_sigterm_to_a_server_with_workers_exits_0(db_url: str, kek_file: str,
                                                  tmp_path: Path) -> None:
    """`sts serve --workers 2`: the signal reaches the supervising process only (as from a
    container runtime); it stops its workers, each finishing what it holds, then its
    dispatcher, and exits 0."""
    _stop_under_load(db_url, kek_file, tmp_path, workers=2, purchases=200, threads=8)


def _stop_under_load(db_url: str, kek_file: str, tmp_path: Path, *, workers: int,
                     purchases: int, threads: int) -> None:
    prep = rig.prepare(db_url, kek_file)
    gateway = Gateway()
    config = rig.delivery_config(tmp_path / "delivery.toml", gateway.url, lease=600)
    server = Server(db_url, kek_file, log=tmp_path / "server.log", workers=workers,
                    extra_env={"STS_DELIVERY_CONFIG": config, "STS_SERVE_GRACEFUL_TIMEOUT": "60"})
    server.start()
    try:
        load = rig.Load([server.url], prep.vendor_key,
                        rig.plan(prep.meters, purchases, 1), threads=threads, sms=True).start()
        deadline = time.monotonic() + 120
        while load.answered() < 40:  # polling a real server until the load is under way
            assert time.monotonic() < deadline, "no purchases answered"
            time.sleep(0.01)
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGTERM)
        signalled = time.monotonic()
        code = server.proc.wait(timeout=90)
        load.stop.set()
        outcomes = load.join()
    finally:
        server.kill()
        gateway.close()
    assert code == 0, (tmp_path / "server.log").read_text()[-3000:]

    stored = {s[1]: s for s in rig.sales(db_url)}
    answered = [o for o in outcomes if o.status == 201]
    refused = [o for o in outcomes if o.status is None]
    assert len(answered) + len(refused) == len(outcomes), {o.status for o in outcomes}
    assert refused, "the server took every purchase: nothing was refused"
    # requests already in flight when the signal came were answered in full after it
    assert any(o.done_at > signalled for o in answered)
    for o in answered:  # answered completely: the sale is stored with the answer's tokens
        assert o.purchase_id in stored and o.body["tokens"]
        assert stored[o.purchase_id][4]["tokens"] == o.body["tokens"]
    for o in refused:  # refused before anything was written
        assert o.purchase_id not in stored
    assert len(stored) == len(answered)
    float_after = rig.scalar(db_url, _float())
    assert prep.float_before - float_after == sum(s[3] for s in stored.values())
    jobs = rig.delivery_rows(db_url)
    assert len(jobs) == len(stored)  # one SMS job per sale, none without its sale
    assert [j for j in jobs if j.lease_until is not None] == []  # no lease left behind


def _float() -> Any:
    import sqlalchemy as sa

    from sts.vending.storage.tables import vendors

    return sa.select(vendors.c.float_balance)
