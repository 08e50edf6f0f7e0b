"""Key change campaigns: meters/s of a TID rollover (KRN 1 / base date 1993 -> KRN 2 / 2014,
RO=1, two tokens per meter, every token stored), 1 and 2 workers, SQLite and PostgreSQL.

Each run starts from a fresh database with N meters (bulk-inserted: registration is not
timed), creates the campaign, and times the workers (separate processes, as `sts campaign run
--workers N` or several hosts would run them) from start to last commit, then the JSON Lines
export.  Afterwards it checks every meter has exactly one key change transaction with two
tokens, and that a sample of meters accept their tokens.  PostgreSQL comes from
STS_BENCH_PG_URL (default: local server, database sts_campaign_bench).

    python benchmarks/bench_campaign.py [--meters 20000] [--db sqlite,pg] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import pg_fresh  # noqa: E402

PG_URL = os.environ.get("STS_BENCH_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_campaign_bench")
SGC = "999950"
OLD_KEY = bytes.fromhex("abababababababab949494949494949401234567")
NEW_KEY = bytes(reversed(OLD_KEY))


def pan_for(i: int) -> str:
    from sts.codec.pan import MeterPan, luhn_check_digit

    body = f"07{60000000 + i:08d}"
    return MeterPan.from_drn(body + str(luhn_check_digit(body))).pan



def setup(db_url: str, kek_file: str, n: int) -> None:
    from sqlalchemy import insert, select

    from sts.vending.config import Settings, open_service
    from sts.vending.registry.admin import Registry
    from sts.vending.storage.tables import meters, supply_groups, tariffs, vending_keys

    svc = open_service(Settings(db_url=db_url, kek_file=kek_file), run_migrations=True)
    reg = Registry(svc.db, svc.sm)
    reg.add_utility("Bench Utility")
    reg.add_sgc(SGC, utility="Bench Utility")
    reg.add_tariff("Flat", price="2.50")
    reg.add_key(SGC, 1, raw=OLD_KEY, base_date=1993)
    reg.add_key(SGC, 2, raw=NEW_KEY, base_date=2014, make_current=False)
    with svc.db.begin() as conn:
        sid = conn.scalar(select(supply_groups.c.id).where(supply_groups.c.sgc == SGC))
        kid = conn.scalar(select(vending_keys.c.id).where(vending_keys.c.sgc_id == sid,
                                                         vending_keys.c.krn == 1))
        tid = conn.scalar(select(tariffs.c.id).where(tariffs.c.name == "Flat"))
        now = svc.now()
        for start in range(0, n, 50_000):
            rows = []
            for i in range(start, min(n, start + 50_000)):
                pan = pan_for(i)
                rows.append({"pan": pan, "tariff_id": tid, "sgc_id": sid, "key_id": kid,
                             "ti": 1, "kt": 2, "ken": 255, "mfr_code": pan[6:8],
                             "service": "electricity", "status": "active",
                             "status_reason": "", "last_tid": 0, "tid_epoch": 0,
                             "max_epoch": 0, "last_hash": "", "created_at": now})
            conn.execute(insert(meters), rows)
    svc.db.dispose()


def server_cpu_s() -> float:
    """CPU seconds the local PostgreSQL server has used (all its processes, and the backends
    that have exited, from the postmaster's children totals): what the workers' statements
    cost the database host (any other client's work on it counts too)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name != "postgres" and not name.startswith("postgres:"):
            continue
        fields = text[text.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
        parent = Path(f"/proc/{fields[1]}/stat")
        try:
            parent_text = parent.read_text()
        except OSError:
            parent_text = ""
        if "(postgres" not in parent_text:  # the postmaster: add its reaped children
            total += int(fields[13]) + int(fields[14])
    return total / tick


def backend_cpu_s(svc: Any, app: str) -> float:
    """CPU seconds of the PostgreSQL backends serving this worker's connections (those named
    `app`), read while they are still open: the server's share of this worker alone."""
    with svc.db.read() as conn:
        pids = [r[0] for r in conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %(app)s", {"app": app})]
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def worker(db_url: str, kek_file: str, chunk: int, cpu: Any) -> None:
    from sts.vending.config import Settings, open_service
    from sts.vending.usecases import campaign

    app = f"sts-campaign-bench-{os.getpid()}"
    pg = not db_url.endswith(".sqlite3")
    if pg:
        db_url += ("&" if "?" in db_url else "?") + f"application_name={app}"
    svc = open_service(Settings(db_url=db_url, kek_file=kek_file))
    t0 = time.process_time()
    campaign.work(svc, "rollover", actor="bench", chunk=chunk)
    mine = time.process_time() - t0
    cpu.put((mine, backend_cpu_s(svc, app) if pg else 0.0))
    svc.db.dispose()


def check(db_url: str, kek_file: str, n: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from sts.codec.pan import parse_pan
    from sts.crypto.sta import table_set
    from sts.engine import MeterKey, decode
    from sts.vending.config import Settings, open_service
    from sts.vending.storage.tables import tokens, transactions
    from sts.vending.usecases import campaign

    svc = open_service(Settings(db_url=db_url, kek_file=kek_file))
    st = campaign.status(svc, "rollover")
    with svc.db.read() as conn:
        txns = conn.scalar(select(func.count()).select_from(transactions)
                           .where(transactions.c.kind == "key_change"))
        per_meter = conn.scalar(select(func.max(select(func.count()).select_from(transactions)
                                       .group_by(transactions.c.meter_id).subquery().c[0])))
        toks = conn.scalar(select(func.count()).select_from(tokens))
    t0 = time.perf_counter()
    recs = 0
    sample = []
    with open(os.devnull, "w") as out:
        for rec in campaign.records(svc, "rollover"):
            out.write(json.dumps(rec) + "\n")
            recs += 1
            if recs in (1, n // 2, n):
                sample.append(rec)
    export_s = time.perf_counter() - t0
    for rec in sample:  # the tokens decode under the old key and carry the new one
        old = MeterKey.derive(dkga=4, vending_key=OLD_KEY, pan=parse_pan(rec["meter"]), kt=2,
                              sgc=SGC, ti=1, krn=1, ea=7, base_date=1993,
                              table_set=table_set("sample"))
        first, second = (decode(t, old) for t in rec["tokens"])
        assert (first.subclass, second.subclass) == (3, 4) and first.fields["krn"] == 2
    svc.db.dispose()
    ok = st["done"] == n and txns == n and toks == 2 * n and per_meter == 1 and recs == n
    return {"ok": ok, "status": st, "txns": txns, "tokens": toks, "export_s": export_s}


def bench(kind: str, n: int, workers: int, chunk: int) -> dict[str, Any] | None:
    tmp = tempfile.mkdtemp(prefix="sts-campaign-bench-")
    kek_file = os.path.join(tmp, "kek.hex")
    Path(kek_file).write_text(secrets.token_bytes(32).hex())
    Path(kek_file).chmod(0o600)
    if kind == "sqlite":
        db_url: str | None = os.path.join(tmp, "bench.sqlite3")
    else:
        db_url = pg_fresh(PG_URL, report=True)
    if db_url is None:
        return None
    t0 = time.perf_counter()
    setup(db_url, kek_file, n)
    setup_s = time.perf_counter() - t0

    from sts.vending.config import Settings, open_service
    from sts.vending.usecases import campaign

    svc = open_service(Settings(db_url=db_url, kek_file=kek_file))
    campaign.create(svc, "rollover", sgc=SGC, to_krn=2, from_krn=1)
    svc.db.dispose()
    spawn = multiprocessing.get_context("spawn")
    load0 = os.getloadavg()
    server0 = server_cpu_s() if kind == "pg" else 0.0
    t0 = time.perf_counter()
    cpu = spawn.Queue()
    procs = [spawn.Process(target=worker, args=(db_url, kek_file, chunk, cpu))
             for _ in range(workers)]
    for p in procs:
        p.start()
    got = [cpu.get() for _ in procs]
    cpu_s = sum(c for c, _ in got)
    backend_s = sum(b for _, b in got)
    for p in procs:
        p.join()
    secs = time.perf_counter() - t0
    server_s = server_cpu_s() - server0 if kind == "pg" else 0.0
    load1 = os.getloadavg()
    res = check(db_url, kek_file, n)
    # the workers' own CPU: what a meter costs the vending host, whatever else the machine is
    # doing; their PostgreSQL backends' CPU (the database host's share); the whole server's
    # CPU over the run (anything else using it counts too)
    return {"db": kind, "meters": n, "workers": workers, "chunk": chunk, "seconds": round(secs, 2),
            "meters_per_s": round(n / secs), "setup_s": round(setup_s, 1),
            "worker_cpu_us_per_meter": round(cpu_s / n * 1e6),
            "backend_cpu_us_per_meter": round(backend_s / n * 1e6),
            "server_cpu_us_per_meter": round(server_s / n * 1e6),
            "export_s": round(res["export_s"], 2), "ok": res["ok"],
            "load_before": [round(x, 2) for x in load0],
            "load_after": [round(x, 2) for x in load1],
            "projected_1M_s": round(1_000_000 / (n / secs))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--meters", type=int, default=20_000)
    ap.add_argument("--db", default="sqlite,pg")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--chunk", type=int, default=5000)
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}  load: {os.getloadavg()}", file=sys.stderr)
    for kind in args.db.split(","):
        for w in (int(x) for x in args.workers.split(",")):
            out = bench(kind, args.meters, w, args.chunk)
            if out is not None:
                print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
