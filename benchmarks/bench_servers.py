"""Several servers on one PostgreSQL: purchases/s and latency with 1, 2 and 3 `sts serve`
processes (one uvicorn worker each, its own delivery dispatcher) on one database, and what
limits it.

The load comes from a separate process (asyncio, keep-alive HTTP/1.1, 16 purchases in flight
spread over the servers), 3,000 purchases per run (`--quick`: 300), each a distinct meter
sale with its own UUID over 200 meters, all for the demo vendor; a last run spreads the same
load over four vendors (each load connection sells for one of them) to show what one
vendor's float costs.  While a run goes, the CPU seconds of the database's backends (those
connected to the benchmark's database, from /proc) and of the server processes are measured,
and pg_stat_activity is sampled every 20 ms for backends waiting on a lock: per purchase the
database's and the servers' CPU; `lock_wait_share`, the share of samples in which some
backend waited for a lock; the statements seen waiting and the tables whose rows they wait
for; `ledger_ok`, the several-servers invariants over every sale the run made (one sale per
id, TIDs strictly increasing per meter, each float exact).  A run is bound by the CPU
(database + servers + load reaching the machine's cores) unless sales wait for one another's rows.

PostgreSQL comes from STS_BENCH_PG_URL (default: local server, database sts_servers_bench);
skipped when unreachable.

    python benchmarks/bench_servers.py [--quick]
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import pg_fresh  # noqa: E402

PG_URL = os.environ.get("STS_BENCH_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_servers_bench")
TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pids: list[int]) -> float:
    """CPU seconds (user + system, children waited for included) of these processes."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / TICK
    return total


def _tree(pid: int) -> list[int]:
    """A process and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def _load(ports: list[int], keys: list[str], pans: list[str], count: int, inflight: int,
          out: Any) -> None:
    import asyncio
    import statistics
    import uuid

    from bench_vending import _RawClient

    async def main() -> dict[str, Any]:
        lat: list[float] = []
        errors = 0
        sent = 0
        first_error: dict[str, str] = {}

        async def worker(n: int) -> None:
            nonlocal sent, errors
            client = _RawClient("127.0.0.1", ports[n % len(ports)],
                                {"Authorization": f"Bearer {keys[n % len(keys)]}"})
            while sent < count:
                i = sent
                sent += 1
                t0 = time.perf_counter()
                status, body = await client.post(f"/v1/purchases/{uuid.uuid4()}",
                                                 {"meter": pans[i % len(pans)], "amount": "20"})
                if status == 201 and b'"tokens"' in body:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1
                    first_error.setdefault("answer", f"{status} {body[:160]!r}")

        start = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(inflight)))
        elapsed = time.perf_counter() - start
        lat.sort()
        return {"purchases": len(lat), "errors": errors, "seconds": round(elapsed, 2),
                "purchases_per_s": round(len(lat) / elapsed, 1) if elapsed else 0.0,
                "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1)
                if lat else None, **first_error}

    out.put(asyncio.run(main()))


class _LockSampler:
    """Samples pg_stat_activity every 20 ms: how often some backend of the database waits
    for a lock (a row or a tuple lock: two sales on one meter or one vendor's float)."""

    def __init__(self, url: str, dbname: str) -> None:
        import sqlalchemy as sa

        self.engine = sa.create_engine(url, pool_size=1)
        self.dbname = dbname
        self.samples = self.waiting = 0
        self.statements: dict[str, int] = {}  # the waiting statements' first words, counted
        self.tables: dict[str, int] = {}  # tables whose rows are waited for, counted
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import sqlalchemy as sa

        q = sa.text("SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 40) FROM "
                    "pg_stat_activity WHERE datname = :d AND wait_event_type = 'Lock'")
        # a row lock's queue: the first waiter waits on the holder's transaction id, the
        # others on the row's tuple lock, which names the table
        rows = sa.text("SELECT l.relation::regclass::text FROM pg_locks l JOIN "
                       "pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted AND "
                       "a.datname = :d AND l.locktype = 'tuple'")
        with self.engine.connect() as conn:
            while not self.stop.wait(0.02):
                self.samples += 1
                waiting = list(conn.execute(q, {"d": self.dbname}).scalars())
                self.waiting += bool(waiting)
                for text in waiting:
                    self.statements[text] = self.statements.get(text, 0) + 1
                for rel in conn.execute(rows, {"d": self.dbname}).scalars():
                    self.tables[rel] = self.tables.get(rel, 0) + 1
                conn.rollback()

    def backends(self) -> list[int]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return [int(p) for p in conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> "
                "pg_backend_pid()"), {"d": self.dbname}).scalars()]


def run_servers(n: int, url: str, kek: str, info: dict[str, Any], *, count: int,
                inflight: int) -> dict[str, Any]:
    from tests.support.server import Server

    servers = [Server(url, kek, extra_env={"STS_DB_POOL": "8"}) for _ in range(n)]
    for s in servers:
        s.launch()
    try:
        for s in servers:
            s.wait_ready()
        ctx = multiprocessing.get_context("spawn")
        ports = [s.port for s in servers]
        # warm up: each server's connections, caches and compiled statements
        q = ctx.Queue()
        warm = ctx.Process(target=_load, args=(ports, info["keys"],
                                               info["meters"], 20 * n, inflight, q))
        warm.start()
        q.get(timeout=300)
        warm.join()
        sampler = _LockSampler(url, url.rsplit("/", 1)[1])
        backends = sampler.backends()
        server_pids = [p for s in servers if s.proc for p in _tree(s.proc.pid)]
        q = ctx.Queue()
        p = ctx.Process(target=_load, args=(ports, info["keys"],
                                            info["meters"], count, inflight, q))
        db0, srv0 = _cpu(backends), _cpu(server_pids)
        sampler.thread.start()
        p.start()
        result: dict[str, Any] = q.get(timeout=900)
        p.join()
        sampler.stop.set()
        sampler.thread.join()
        db_s, srv_s = _cpu(backends) - db0, _cpu(server_pids) - srv0
        sampler.engine.dispose()
    finally:
        for s in servers:
            s.stop()
    result["ledger_ok"] = _check(url, result["purchases"])
    done = max(1, result["purchases"])
    wall = result["seconds"] or 1.0
    result.update({
        "db_cpu_ms_per_purchase": round(db_s * 1000 / done, 2),
        "servers_cpu_ms_per_purchase": round(srv_s * 1000 / done, 2),
        "db_cpu_cores": round(db_s / wall, 2), "servers_cpu_cores": round(srv_s / wall, 2),
        "lock_wait_share": round(sampler.waiting / max(1, sampler.samples), 3),
        "waiting_statements": dict(sorted(sampler.statements.items(),
                                          key=lambda kv: -kv[1])[:3]),
        "rows_waited_for_in": dict(sorted(sampler.tables.items(), key=lambda kv: -kv[1])[:3]),
    })
    return result


def _check(url: str, answered: int) -> bool:
    """The several-servers invariants over the whole run (warm-up included): one sale per
    purchase id, each meter's TIDs strictly increasing in commit order, every vendor's float
    exactly its opening 1,000,000 less its sales."""
    from decimal import Decimal

    import sqlalchemy as sa
    from tests.operations.rig import sales

    from sts.vending.storage.tables import vendors

    stored = sales(url)
    last: dict[int, int] = {}
    ordered = True
    for _seq, _pid, meter_id, _amount, answer in stored:
        tids = [t["tid"] for t in answer["tokens"] if t.get("tid") is not None]
        ordered = ordered and bool(tids) and min(tids) > last.get(meter_id, -1)
        last[meter_id] = max(tids) if tids else last.get(meter_id, -1)
    eng = sa.create_engine(url)
    with eng.connect() as conn:
        floats = [Decimal(b) for b in conn.execute(sa.select(vendors.c.float_balance)).scalars()]
    eng.dispose()
    spent = sum((Decimal(1_000_000) - b for b in floats), Decimal(0))
    return (ordered and len({s[1] for s in stored}) == len(stored) >= answered
            and spent == sum((s[3] for s in stored), Decimal(0)))


def run(quick: bool = False) -> dict[str, Any]:
    count = 300 if quick else 3000
    out: dict[str, Any] = {"purchases_per_run": count, "inflight": 16, "meters": 200,
                           "cores": os.cpu_count(), "load_average_1m": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as d:
        kek = Path(d) / f"kek-{secrets.token_hex(4)}"
        kek.write_text(secrets.token_bytes(32).hex())
        kek.chmod(0o600)
        for n, vendors in ((1, 1), (2, 1), (3, 1), (3, 4)):
            pg = pg_fresh(PG_URL, report=True)
            if pg is None:
                return {"skipped": f"PostgreSQL not reachable at {PG_URL}"}
            info = _prepare(pg, str(kek), vendors)
            name = f"servers_{n}" + (f"_vendors_{vendors}" if vendors > 1 else "")
            out[name] = run_servers(n, pg, str(kek), info, count=count, inflight=16)
            print(json.dumps({name: out[name]}), file=sys.stderr, flush=True)
    out["load_average_1m_after"] = os.getloadavg()[0]
    return out


def _prepare(url: str, kek: str, vendors: int) -> dict[str, Any]:
    """A fresh demo utility, its meters without AMI (no delivery jobs: sales only), and
    `vendors` vendors selling them (the demo's and more), an API key each."""
    import sqlalchemy as sa

    from sts.vending.config import Settings, open_service
    from sts.vending.registry.admin import DEMO_SGC, Registry, fill_demo
    from sts.vending.storage.tables import meters

    svc = open_service(Settings(db_url=url, kek_file=kek), run_migrations=True)
    try:
        reg = Registry(svc.db, svc.sm)
        info = fill_demo(reg, production_tables=False, meters_count=200)
        with svc.db.begin() as conn:
            conn.execute(sa.update(meters).values(ami=False))
        info["keys"] = [info["api_keys"]["vendor"]]
        for i in range(1, vendors):
            reg.add_vendor(f"Bench Vendor {i}", float_balance="1000000", sgcs=[DEMO_SGC])
            info["keys"].append(reg.add_api_key("vendor", vendor=f"Bench Vendor {i}"))
    finally:
        svc.db.dispose()
    return info


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
