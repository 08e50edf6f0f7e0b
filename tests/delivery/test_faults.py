"""Faults: the broker stopped during 50 sales, and the server SIGKILLed with jobs pending.
Nothing is lost and nothing is credited twice."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.delivery.helpers import fast_config, meter_file, start_dispatcher, start_fleet
from tests.fixtures import Demo
from tests.support.carriers import Broker
from tests.support.server import Server
from tests.support.waiting import wait_for

SALES = 50


def statuses(demo: Demo, pids: list[str]) -> list[str]:
    out = []
    for pid in pids:
        d = demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("vendor")).json()["delivery"]
        out.append(d[0]["status"])
    return out


@pytest.mark.slow
def test_broker_stopped_during_50_sales(demo: Demo, broker: Broker, tmp_path: Path) -> None:
    pans = demo.meters
    fleet = start_fleet(broker, meter_file(demo.service, tmp_path, pans), tmp_path / "state")
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    units: dict[str, Decimal] = dict.fromkeys(pans, Decimal(0))
    pids: list[str] = []
    try:
        wait_for(lambda: len(fleet.connected) == len(pans), what="all meters online")
        for n in range(SALES):
            if n == 15:
                broker.stop()
            if n == 35:
                broker.start()
            pan = pans[n % len(pans)]
            pid = str(uuid.uuid4())
            r = demo.buy(pan, "10", pid=pid)
            assert r.status_code == 201, r.text
            units[pan] += Decimal(r.json()["receipt"]["units"])
            pids.append(pid)
        wait_for(lambda: statuses(demo, pids) == ["accepted"] * SALES, timeout=60,
                 what="all 50 accepted")
        for pan in pans:  # each credit entered exactly once
            assert fleet.meters[pan].meter.state.memory.registers["electricity"] == units[pan]
        for pid in pids:
            d = demo.client.get(f"/v1/purchases/{pid}",
                                headers=demo.h("vendor")).json()["delivery"][0]
            assert d["meter_result"]["tokens"][0]["result"] == "accept"
    finally:
        disp.stop()
        fleet.stop()


@pytest.mark.slow
def test_server_killed_with_jobs_pending(demo: Demo, broker: Broker, settings: Any,
                                         tmp_path: Path) -> None:
    pans = demo.meters[:3]
    path = meter_file(demo.service, tmp_path, pans)
    config = tmp_path / "delivery.toml"
    config.write_text(
        "[retry]\nbase = 0.05\nmax_delay = 0.5\n[dispatch]\npoll = 0.05\nlease = 1.0\n"
        "[ami]\nanswer_timeout = 2.0\nclient_id = \"sts-kill-test\"\nreconnect_max = 1.0\n")
    env = {"STS_AMI_BROKER": broker.url, "STS_DELIVERY_CONFIG": str(config)}
    broker.stop()  # the jobs cannot leave: they stay pending while the server runs
    server = Server(settings.db_url, settings.kek_file, extra_env=env,
                    log=tmp_path / "server.log").start(timeout=120)
    pids = []
    units: dict[str, Decimal] = dict.fromkeys(pans, Decimal(0))
    try:
        with httpx.Client(base_url=server.url, headers=demo.h("vendor")) as http:
            for n in range(12):
                pid = str(uuid.uuid4())
                pan = pans[n % 3]
                r = http.post(f"/v1/purchases/{pid}", json={"meter": pan, "amount": "10"})
                assert r.status_code == 201, r.text
                units[pan] += Decimal(r.json()["receipt"]["units"])
                pids.append(pid)
        assert set(statuses(demo, pids)) == {"pending"}
        server.kill()  # SIGKILL, possibly holding leases
        broker.start()
        fleet = start_fleet(broker, path, tmp_path / "state")
        server = Server(settings.db_url, settings.kek_file, extra_env=env,
                        log=tmp_path / "server.log").start(timeout=120)
        wait_for(lambda: statuses(demo, pids) == ["accepted"] * len(pids), timeout=60,
                 what="all accepted after the restart")
        for pan in pans:
            assert fleet.meters[pan].meter.state.memory.registers["electricity"] == units[pan]
        fleet.stop()
    finally:
        server.kill()
