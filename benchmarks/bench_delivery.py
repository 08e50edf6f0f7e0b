"""Token delivery: sales per second with AMI delivery on (and off, for comparison), and the
time from a sale to the meter's `accepted`, p50/p99, for 1,000 AMI meters.

Everything is real and separate: a Mosquitto broker on a free port, `sts serve --workers 2
--ami-broker ...` (its dispatcher runs in the supervising process, off the sales' path),
`sts fleet ami` with 1,000 virtual meters in one process, and a load process (keep-alive
HTTP, 16 sales in flight).  Latency: from sending the sale to the meter's status message
(TOKEN_EXECUTION_OK) seen by an observer subscribed to the status topics; then the figures
wait until every job is `accepted` in the database.  PostgreSQL from STS_BENCH_PG_URL
(default: local server, database sts_delivery_bench); SQLite when it is unreachable.

    python benchmarks/bench_delivery.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import pg_fresh  # noqa: E402

PG_URL = os.environ.get("STS_BENCH_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_delivery_bench")


def _load(port: int, key: str, pans: list[str], count: int, inflight: int, out: Any) -> None:
    from bench_vending import _RawClient

    async def main() -> dict[str, Any]:
        started: dict[str, tuple[float, float]] = {}
        errors = 0
        sent = 0

        async def worker() -> None:
            nonlocal sent, errors
            client = _RawClient("127.0.0.1", port, {"Authorization": f"Bearer {key}"})
            while sent < count:
                i = sent
                sent += 1
                pid = str(uuid.uuid4())
                t0 = time.time()
                status, body = await client.post(f"/v1/purchases/{pid}",
                                                 {"meter": pans[i % len(pans)], "amount": "20"})
                if status == 201 and b'"tokens"' in body:
                    started[pid] = (t0, time.time())
                else:
                    errors += 1

        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        elapsed = time.perf_counter() - t
        return {"started": started, "errors": errors, "seconds": elapsed}

    out.put(asyncio.run(main()))


class Observer:
    """Watches the status and online topics (a plain, non-persistent MQTT client)."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.accepted: dict[str, float] = {}
        self.online: set[str] = set()
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}")
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([("sts/v1/meters/+/status", 0), ("sts/v1/meters/+/online", 0)])
        self.client.loop_start()

    def _message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.time()
        doc = json.loads(msg.payload)
        with self.lock:
            if msg.topic.endswith("/online"):
                self.online.add(doc.get("meter"))
            elif doc.get("token_status") == "TOKEN_EXECUTION_OK" and doc.get("purchase_id"):
                self.accepted.setdefault(doc["purchase_id"], now)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")



def _sales(server_port: int, key: str, pans: list[str], count: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_load, args=(server_port, key, pans, count, 16, q))
    p.start()
    res: dict[str, Any] = q.get(timeout=900)
    p.join()
    return res


def run(quick: bool = False) -> dict[str, Any]:
    from sqlalchemy import func, select, update
    from tests.support.server import Server, free_port

    from sts.delivery.sim import export_sim, write_jsonl
    from sts.vending.config import Settings, open_service
    from sts.vending.registry.admin import Registry, fill_demo
    from sts.vending.storage.tables import meters
    from sts.vending.storage.tables_delivery import deliveries

    n_meters, count = (200, 400) if quick else (1000, 3000)
    out: dict[str, Any] = {"meters": n_meters, "sales": count, "inflight": 16, "workers": 2}
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port = free_port()
        (tmp / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                                    f"persistence true\npersistence_location {tmp}/\n"
                                    "max_queued_messages 100000\n")
        broker = subprocess.Popen([mosquitto, "-c", str(tmp / "m.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db_url = pg_fresh(PG_URL) or str(tmp / "bench.sqlite3")
        out["database"] = "postgresql" if db_url.startswith("postgresql") else "sqlite"
        kek = tmp / "kek"
        kek.write_text(secrets.token_bytes(32).hex())
        kek.chmod(0o600)  # a KEK file must be private
        svc = open_service(Settings(db_url=db_url, kek_file=str(kek)), run_migrations=True)
        t = time.perf_counter()
        info = fill_demo(Registry(svc.db, svc.sm), production_tables=False,
                         meters_count=n_meters)
        out["setup_seconds"] = round(time.perf_counter() - t, 1)
        pans, key = info["meters"], info["api_keys"]["vendor"]
        write_jsonl(str(tmp / "meters.jsonl"),
                    export_sim(svc.db, svc.sm, [], actor="bench", now=svc.now()))
        sts = str(Path(sys.executable).parent / "sts")
        observer = Observer(port)
        fleet = subprocess.Popen([sts, "fleet", "ami", "--broker", f"mqtt://127.0.0.1:{port}",
                                  "--meters", str(tmp / "meters.jsonl"), "--state-dir",
                                  str(tmp / "state")], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
        server = None
        try:
            t = time.perf_counter()
            _wait(lambda: len(observer.online) >= n_meters, 300)
            out["fleet_online_seconds"] = round(time.perf_counter() - t, 1)
            # the same server throughout; AMI off (no jobs) and on alternate, so both see the
            # same machine (other load on a shared machine moves both alike)
            server = Server(db_url, str(kek), workers=2, extra_env={
                "STS_DB_POOL": "16", "STS_AMI_BROKER": f"mqtt://127.0.0.1:{port}"}).start(
                timeout=180)
            rates: dict[bool, list[float]] = {False: [], True: []}
            started: dict[str, tuple[float, float]] = {}
            errors = 0
            assert server.proc is not None
            procs = {"dispatcher_process": server.proc.pid, "fleet": fleet.pid,
                     "broker": broker.pid}
            cpu: dict[bool, dict[str, float]] = {False: dict.fromkeys(procs, 0.0),
                                                 True: dict.fromkeys(procs, 0.0)}
            for ami in (False, True, False, True):
                with svc.db.begin() as conn:
                    conn.execute(update(meters).values(ami=ami))
                before = {name: _cpu(pid) for name, pid in procs.items()}
                res = _sales(server.port, key, pans, count // 2)
                if ami:  # the answers still on their way belong to this round
                    target = len(started) + len(res["started"])
                    _wait(lambda t=target: len(observer.accepted) >= t, 120)
                for name, pid in procs.items():
                    cpu[ami][name] += _cpu(pid) - before[name]
                rates[ami].append(len(res["started"]) / res["seconds"])
                errors += res["errors"]
                if ami:
                    started.update(res["started"])
            out["ami_off_sales_per_s"] = round(sum(rates[False]) / 2, 1)
            out["ami_on_sales_per_s"] = round(sum(rates[True]) / 2, 1)
            out["rounds_sales_per_s"] = {"off": [round(x, 1) for x in rates[False]],
                                         "on": [round(x, 1) for x in rates[True]]}
            out["errors"] = errors
            # CPU the delivery side spends per sale (AMI on), beyond what it idles at (off)
            out["cpu_ms_per_ami_sale"] = {
                name: round((cpu[True][name] - cpu[False][name]) * 1000 / max(1, len(started)),
                            2) for name in procs}

            def all_accepted() -> bool:
                with svc.db.read() as conn:
                    n = conn.scalar(select(func.count()).select_from(deliveries)
                                    .where(deliveries.c.status == "accepted"))
                return int(n or 0) >= len(started)

            t = time.perf_counter()
            _wait(all_accepted, 600)
            out["drain_after_last_sale_s"] = round(time.perf_counter() - t, 2)
            with observer.lock:
                seen = {p: observer.accepted[p] for p in started if p in observer.accepted}
            out["accepted_seen"] = len(seen)

            def pct(values: list[float], q: float) -> float:
                values = sorted(values)
                return round(values[min(len(values) - 1, int(len(values) * q))] * 1000, 1)

            if seen:
                total = [seen[p] - started[p][0] for p in seen]  # sale sent -> meter accepted
                after = [seen[p] - started[p][1] for p in seen]  # sale answered -> accepted
                sale = [started[p][1] - started[p][0] for p in started]
                out["sale_to_accepted_p50_ms"] = pct(total, 0.5)
                out["sale_to_accepted_p99_ms"] = pct(total, 0.99)
                out["answer_to_accepted_p50_ms"] = pct(after, 0.5)
                out["answer_to_accepted_p99_ms"] = pct(after, 0.99)
                out["sale_http_p50_ms"] = pct(sale, 0.5)
            with svc.db.read() as conn:
                rows = conn.execute(select(deliveries.c.status, func.count())
                                    .group_by(deliveries.c.status)).all()
            out["jobs"] = {r[0]: r[1] for r in rows}
        finally:
            if server is not None:
                server.stop()
            os.killpg(fleet.pid, signal.SIGTERM)
            fleet.wait(timeout=60)
            observer.stop()
            broker.terminate()
            broker.wait(timeout=10)
            svc.db.dispose()
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
