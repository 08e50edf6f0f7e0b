"""Test rig helpers: an AMI fleet for the demo meters, and a dispatcher on the test broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sts.delivery.ami_fleet import AmiFleet
from sts.delivery.config import AmiConfig, DeliveryConfig, MqttEndpoint, RetryPolicy
from sts.delivery.sim import export_sim, write_jsonl
from sts.delivery.worker import Dispatcher


def fast_config(broker_url: str = "", **kw: Any) -> DeliveryConfig:
    cfg = DeliveryConfig(retry=RetryPolicy(base=0.05, factor=2, max_delay=0.5, max_attempts=4),
                         ami=AmiConfig(broker=broker_url, client_id=f"sts-test-{id(kw)}",
                                       answer_timeout=2.0, publish_timeout=2.0,
                                       reconnect_max=1.0),
                         poll=0.05, lease=2.0)
    for name, value in kw.items():
        setattr(cfg, name, value)
    return cfg


def meter_file(service: Any, tmp: Path, pans: list[str]) -> str:
    objs = export_sim(service.db, service.sm, pans, actor="test", now=service.now())
    path = tmp / "meters.jsonl"
    write_jsonl(str(path), objs)
    return str(path)


def start_fleet(broker: Any, meters_path: str, state_dir: Path,
                only: set[str] | None = None) -> AmiFleet:
    fleet = AmiFleet.load(MqttEndpoint("127.0.0.1", broker.port), meters_path,
                          state_dir=str(state_dir), only=only)
    fleet.start()
    return fleet


def start_dispatcher(service: Any, cfg: DeliveryConfig) -> Dispatcher:
    d = Dispatcher.from_config(service.db, cfg)
    d.start()
    return d
