"""AMI end to end: sale -> outbox -> MQTT (real Mosquitto) -> virtual meter -> status ->
the purchase's delivery `accepted` with the meter's result."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.delivery.conftest import Broker, Demo, wait_for
from tests.delivery.helpers import fast_config, meter_file, start_dispatcher, start_fleet


def delivery_of(demo: Demo, pid: str) -> list[dict[str, Any]]:
    r = demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("vendor"))
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()["delivery"]
    return out


def test_sale_reaches_the_meter_and_is_accepted(demo: Demo, broker: Broker,
                                                tmp_path: Path) -> None:
    pan = demo.meters[0]
    fleet = start_fleet(broker, meter_file(demo.service, tmp_path, [pan]), tmp_path / "state")
    disp = start_dispatcher(demo.service, fast_config(broker.url))
    try:
        wait_for(lambda: pan in fleet.connected, what="the meter to connect")
        pid = str(uuid.uuid4())
        r = demo.buy(pan, "100", pid=pid)
        assert r.status_code == 201, r.text
        first = delivery_of(demo, pid)
        assert [d["channel"] for d in first] == ["ami"]
        done = wait_for(lambda: [d for d in delivery_of(demo, pid)
                                 if d["status"] == "accepted"], what="accepted")
        d = done[0]
        assert d["meter_result"]["token_status"] == "TOKEN_EXECUTION_OK"
        assert d["meter_result"]["tokens"][0]["result"] == "accept"
        assert d["attempts"] == 1
        units = r.json()["receipt"]["units"]
        meter = fleet.meters[pan].meter
        assert str(meter.state.memory.registers["electricity"]) == units
    finally:
        disp.stop()
        fleet.stop()
