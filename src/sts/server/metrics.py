"""`/metrics`: the server's figures for Prometheus (text exposition format).

Answered only to `Authorization: Bearer <secret>` where the secret is an admin or auditor API
key (the `read_metrics` action of the access policy) or the scrape token of the configuration
(`STS_METRICS_TOKEN`, or a file named by `STS_METRICS_TOKEN_FILE` that only its owner may read):
a scraper needs no API key of its own.

Two kinds of figures (docs/operations.md, "Metrics"):
- counted in the processes (`sts.vending.metrics`): sales and their latency per face, requests,
  errors per code, security-module calls, database connections.  Under `sts serve` they are
  kept in prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR), so whichever worker
  answers a scrape adds up every worker's counts;
- read from the database at scrape time (`usecases.monitoring`): delivery jobs per state and
  the age of the oldest, campaign progress.  Every process answers the same, and nothing has
  to be kept in step between workers or hosts.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sts.errors import ConfigError
from sts.vending.access.api_keys import authenticate, bearer_key
from sts.vending.keys.software import read_private
from sts.vending.service import VendingService
from sts.vending.usecases import monitoring

ENV_TOKEN = "STS_METRICS_TOKEN"
ENV_TOKEN_FILE = "STS_METRICS_TOKEN_FILE"
MIN_TOKEN = 16  # characters: a scrape token is a secret, not a password to remember


def scrape_token_from_env() -> str | None:
    """The configured scrape token (None: only admin and auditor API keys may scrape)."""
    token = os.environ.get(ENV_TOKEN) or None
    path = os.environ.get(ENV_TOKEN_FILE) or None
    if token is None and path is not None:
        try:
            token = read_private(path, "the metrics token file", "metrics_token").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the metrics token file {path}: {exc.strerror}",
                              field="metrics_token") from None
    if token is not None and len(token) < MIN_TOKEN:
        raise ConfigError(f"the metrics scrape token must be at least {MIN_TOKEN} characters",
                          field="metrics_token")
    return token


class _ThisProcess:
    """The default registry's metrics (one process: tests, a single in-process app)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class DatabaseFigures:
    """Figures read from the database at each scrape; `sts_database_up` 0 when it fails."""

    def __init__(self, service: VendingService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("sts_database_up", "1 when the scrape could read the database")
        try:
            jobs = monitoring.delivery_jobs(self.service)
            camps = monitoring.campaign_progress(self.service)
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        count = GaugeMetricFamily("sts_delivery_jobs", "Token delivery jobs per channel and "
                                  "state", labels=["channel", "status"])
        oldest = GaugeMetricFamily("sts_delivery_job_oldest_seconds", "Age of the oldest "
                                   "delivery job in each channel and state", labels=["channel",
                                                                                      "status"])
        for j in jobs:
            count.add_metric([j.channel, j.status], j.count)
            oldest.add_metric([j.channel, j.status], j.oldest_seconds)
        yield count
        yield oldest
        progress = GaugeMetricFamily("sts_campaign_meters", "Meters of each key change "
                                     "campaign per state", labels=["campaign", "status"])
        for c in camps:
            progress.add_metric([c.campaign, c.status], c.count)
        yield progress


def exposition(service: VendingService) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseFigures(service))
    return generate_latest(registry)


def mount(app: FastAPI, service: VendingService, token: str | None) -> None:
    def check(request: Request) -> None:
        secret = bearer_key(request.headers.get("authorization"))
        if token is not None and hmac.compare_digest(secret.encode(), token.encode()):
            return
        with service.db.read() as conn:
            authenticate(conn, secret).require("read_metrics")

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Any:
        check(request)
        return Response(exposition(service), media_type=CONTENT_TYPE_LATEST)
