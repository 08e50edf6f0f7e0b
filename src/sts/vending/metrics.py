"""The counters the service and the server increment (Prometheus, `prometheus-client`).

Counted where the fact is known: sales in the sale's frame once it has committed
(`usecases.sale.locked_sale`), security-module calls in the module's base class, database
connections by pool events, requests, latency and errors by the server's request middleware.
Figures that live in the database (delivery jobs, campaign progress) are not counted here: the
scrape reads them (`sts.server.metrics`), so every process answers the same.

`sts serve` runs these in prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set
before this module is imported): each worker writes its values to its own files and a scrape,
answered by any worker, adds them up.  Gauges say how to add: `livesum` (live processes only).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Engine, event

from sts.vending import observe

# request latency buckets, seconds: a sale takes milliseconds; a slow one seconds
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SALES = Counter("sts_sales", "Sales answered, per face; result new (a sale made) or repeat "
                "(a repeated id answered with its stored sale)", ["face", "result"])
SALE_SECONDS = Histogram("sts_sale_request_seconds", "Duration of the requests that answered "
                         "a sale, per face", ["face"], buckets=LATENCY_BUCKETS)
REQUESTS = Counter("sts_requests", "HTTP requests answered, per face and status",
                   ["face", "status"])
REQUEST_SECONDS = Histogram("sts_request_seconds", "Duration of HTTP requests, per face",
                            ["face"], buckets=LATENCY_BUCKETS)
ERRORS = Counter("sts_errors", "Requests answered with an error, per face and stable error "
                 "code (HTTP_<status> where the face has no code)", ["face", "code"])
SECURITY_MODULE_CALLS = Counter("sts_security_module_calls", "Security module operations, "
                                "per operation and outcome (ok / error)",
                                ["module", "operation", "outcome"])
DB_IN_USE = Gauge("sts_db_connections_in_use", "Database connections checked out of the "
                  "pools of the live server processes", multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge("sts_db_pool_size", "Configured pool size (steady connections) of the "
                     "live server processes", multiprocess_mode="livesum")


def sale_made(created: bool) -> None:
    """A sale answered by the service: counted after its transaction committed."""
    SALES.labels(observe.face(), "new" if created else "repeat").inc()
    observe.note_sale()


def security_module_call(module: str, operation: str, ok: bool) -> None:
    SECURITY_MODULE_CALLS.labels(module, operation, "ok" if ok else "error").inc()


def watch_pool(engine: Engine) -> None:
    """Count the engine's checked-out connections (and its pool size) in the gauges: called
    once per server process, for the service's engine."""
    size = getattr(engine.pool, "size", None)
    if callable(size):
        DB_POOL_SIZE.inc(size())

    @event.listens_for(engine, "checkout")
    def _out(*_args: Any) -> None:
        DB_IN_USE.inc()

    @event.listens_for(engine, "checkin")
    def _in(*_args: Any) -> None:
        DB_IN_USE.dec()


def request_done(info: observe.RequestInfo, status: int, seconds: float) -> None:
    """One HTTP request answered (the server's middleware)."""
    REQUESTS.labels(info.face, str(status)).inc()
    REQUEST_SECONDS.labels(info.face).observe(seconds)
    if info.sales:
        SALE_SECONDS.labels(info.face).observe(seconds)
    if status >= 400:
        ERRORS.labels(info.face, info.error_code or f"HTTP_{status}").inc()
