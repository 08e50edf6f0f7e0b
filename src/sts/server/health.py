"""`/healthz` and `/readyz`: what a load balancer, an orchestrator or a monitor asks.

`/healthz` answers 200 while the process serves at all (a liveness probe: restart it when this
fails).  `/readyz` runs the readiness checks (`sts.vending.readiness`: database, migrations,
security module) and, when token delivery pushes to an MQTT broker (`STS_AMI_BROKER`), whether
that broker accepts a connection; 200 with every check's reason when all pass, 503 with them
when one fails (take the server out of the pool until it passes).  Neither needs a key: they
say nothing a caller could use, and are never cached.
"""

from __future__ import annotations

import os
import socket

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from sts.vending import readiness
from sts.vending.readiness import Check
from sts.vending.service import VendingService

BROKER_TIMEOUT = 2.0  # seconds to open a TCP connection to the broker
ENV_BROKER = "STS_AMI_BROKER"


def broker_check(url: str) -> Check:
    from sts.delivery.config import parse_mqtt_url

    def probe() -> str:
        endpoint = parse_mqtt_url(url)
        with socket.create_connection((endpoint.host, endpoint.port), timeout=BROKER_TIMEOUT):
            pass
        return f"{endpoint.host}:{endpoint.port} accepts connections"

    return readiness.timed("broker", probe)


def ready(svc: VendingService) -> tuple[bool, dict[str, object]]:
    checks = readiness.checks(svc)
    broker = os.environ.get(ENV_BROKER)
    if broker:
        checks.append(broker_check(broker))
    ok = all(c.ok for c in checks)
    return ok, {"status": "ready" if ok else "not ready",
                "checks": {c.name: c.as_dict() for c in checks}}


def mount(app: FastAPI, service: VendingService) -> None:
    no_store = {"cache-control": "no-store"}

    @app.get("/healthz", include_in_schema=False)
    def health() -> JSONResponse:
        return JSONResponse({"status": "ok"}, headers=no_store)

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        ok, body = await run_in_threadpool(ready, service)
        return JSONResponse(body, status_code=200 if ok else 503, headers=no_store)
