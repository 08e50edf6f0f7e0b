"""Mobile money: M-Pesa C2B confirmations per second end to end, callback in -> token out
to the SMS carrier.

Real and separate: `sts serve --workers 2` (its dispatcher sends SMS), an SMS gateway
stand-in in this process counting the messages it accepts, and 16 client threads posting
Daraja confirmations (keep-alive HTTP) from loopback.  Figures: confirmations answered per
second, confirmations whose SMS reached the gateway per second (the end-to-end rate), and the
answer latency p50/p99.  PostgreSQL from STS_BENCH_PG_URL (default: local server, database
sts_payments_bench); SQLite when it is unreachable.

    python benchmarks/bench_payments.py [--quick]
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import pg_fresh  # noqa: E402

PG_URL = os.environ.get("STS_BENCH_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_payments_bench")
INFLIGHT = 16


class Gateway:
    """An SMS gateway that accepts every message (once per idempotency key)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.lock = threading.Lock()
        gw = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with gw.lock:
                    gw.keys.add(self.headers.get("Idempotency-Key") or secrets.token_hex(8))
                self.send_response(202)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.keys)


def _confirmation(i: int, meter: str) -> bytes:
    return json.dumps({
        "TransactionType": "Pay Bill", "TransID": f"BENCH{i:07d}",
        "TransTime": "20250303100000", "TransAmount": "100.00", "BusinessShortCode": "600000",
        "BillRefNumber": meter, "InvoiceNumber": "", "OrgAccountBalance": "0.00",
        "ThirdPartyTransID": "", "MSISDN": f"2547{i % 100000000:08d}",
        "FirstName": "BENCH"}).encode()


def _load(port: int, bodies: list[bytes]) -> list[float]:
    """Post every body with INFLIGHT keep-alive connections; the answer latencies."""
    local = threading.local()

    def post(body: bytes) -> float:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        t = time.perf_counter()
        conn.request("POST", "/pay/c2b/confirmation", body,
                      {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"confirmation answered {resp.status}")
        return time.perf_counter() - t

    with ThreadPoolExecutor(INFLIGHT) as pool:
        return list(pool.map(post, bodies))


def run(quick: bool = False) -> dict[str, Any]:
    from sqlalchemy import update
    from tests.support.server import Server

    from sts.vending.config import Settings, open_service
    from sts.vending.registry.admin import Registry, add_demo_channel, fill_demo
    from sts.vending.storage.tables import meters

    n_meters, count = (50, 300) if quick else (200, 2000)
    out: dict[str, Any] = {"meters": n_meters, "confirmations": count, "inflight": INFLIGHT,
                           "workers": 2}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        db_url = pg_fresh(PG_URL) or str(tmp / "bench.sqlite3")
        out["database"] = "postgresql" if db_url.startswith("postgresql") else "sqlite"
        kek = tmp / "kek"
        kek.write_text(secrets.token_bytes(32).hex())
        kek.chmod(0o600)  # a KEK file must be private
        svc = open_service(Settings(db_url=db_url, kek_file=str(kek)), run_migrations=True)
        reg = Registry(svc.db, svc.sm)
        pans = fill_demo(reg, production_tables=False, meters_count=n_meters)["meters"]
        add_demo_channel(reg)
        reg.set_top_up_approval("Demo Utility", None)  # the bench tops up without four-eyes
        reg.top_up("M-Pesa", str(count * 100))
        with svc.db.begin() as conn:  # SMS only: the token out is the gateway's
            conn.execute(update(meters).values(ami=False))
        svc.db.dispose()
        gateway = Gateway()
        server = Server(db_url, str(kek), workers=2, extra_env={
            "STS_DB_POOL": "16", "STS_SMS_URL": gateway.url}).start()
        try:
            bodies = [_confirmation(i, pans[i % n_meters]) for i in range(count)]
            _load(server.port, [_confirmation(10_000_000 + i, pans[i]) for i in range(4)])
            deadline = time.monotonic() + 60
            while gateway.count() < 4 and time.monotonic() < deadline:
                threading.Event().wait(0.05)
            base = gateway.count()
            t0 = time.perf_counter()
            latencies = sorted(_load(server.port, bodies))
            answered = time.perf_counter() - t0
            deadline = time.monotonic() + 600
            while gateway.count() < base + count and time.monotonic() < deadline:
                threading.Event().wait(0.02)
            delivered = time.perf_counter() - t0
        finally:
            server.stop()
            gateway.server.shutdown()
        out["answered_per_second"] = round(count / answered, 1)
        out["sms_out_per_second"] = round((gateway.count() - base) / delivered, 1)
        out["sms_sent"] = gateway.count() - base
        out["answer_p50_ms"] = round(latencies[len(latencies) // 2] * 1000, 1)
        out["answer_p99_ms"] = round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
