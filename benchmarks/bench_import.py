"""Bulk meter import: meters/s for `sts admin meter import` on SQLite and PostgreSQL.

Generates a CSV of N meters (11-digit printed numbers, one customer each), imports it into a
fresh database (the import path the CLI uses, in-process), then imports it again (all
unchanged).  Reports the phases (reading + checking + staging rows, which overlap on
PostgreSQL; new customers; new meters and commit), this process's CPU time, the machine's
load average, and meters/s.  PostgreSQL comes from STS_BENCH_PG_URL (default: local server,
database sts_import_bench, dropped and re-created); it is skipped if unreachable.

    python benchmarks/bench_import.py [--meters N] [--db sqlite|postgres|both] [--quick]
"""

from __future__ import annotations

import argparse
import json
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
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_import_bench")
SGC = "600001"


def write_file(path: Path, count: int) -> None:
    from sts.codec.pan import luhn_check_digit

    with path.open("w", encoding="utf-8") as out:
        out.write("meter,sgc,krn,ti,kt,ea,dkga,base_date,tariff,account_no,name,address\n")
        for i in range(1, count + 1):
            body = f"07{i:08d}"
            out.write(f"{body}{luhn_check_digit(body)},{SGC},1,1,2,7,4,2014,Flat,"
                      f"B{i:08d},Customer {i},\"{i} Long Road, Town\"\n")



def measure(url: str, data: Path, tmp: Path) -> dict[str, Any]:
    from sts.vending.config import Settings, open_service
    from sts.vending.registry.admin import Registry
    from sts.vending.registry.importer import import_file

    kek = tmp / f"kek-{secrets.token_hex(4)}"
    kek.write_text(secrets.token_bytes(32).hex())
    kek.chmod(0o600)  # a KEK file must be private
    svc = open_service(Settings(db_url=url, kek_file=str(kek)), run_migrations=True)
    reg = Registry(svc.db, svc.sm, actor="bench")
    reg.add_utility("Bench")
    reg.add_sgc(SGC, utility="Bench")
    reg.add_key(SGC, 1, dkga=4, ea=7, base_date=2014)
    reg.add_tariff("Flat", price="2.50", ti=1)
    out: dict[str, Any] = {"load_before": round(os.getloadavg()[0], 2)}
    for run in ("first", "again"):
        marks: dict[str, float] = {}
        t0, cpu0 = time.perf_counter(), time.process_time()

        def step(stage: str, _done: int, marks: dict[str, float] = marks,
                 t0: float = t0) -> None:
            marks[stage] = time.perf_counter() - t0

        res = import_file(svc.db, data, actor="bench", at=svc.now(), progress=step)
        total = time.perf_counter() - t0
        assert res.ok, res.rejected[:3]
        checked = marks.get("compared", 0.0)  # read, checked, staged, compared
        out[run] = {"seconds": round(total, 2), "meters_per_s": round(res.rows / total),
                    "python_cpu_s": round(time.process_time() - cpu0, 2),
                    "imported": res.imported, "unchanged": res.unchanged,
                    "read_check_stage_s": round(checked, 2),
                    "customers_s": round(marks.get("customers", checked)
                                         - marks.get("compared", checked), 2),
                    "meters_commit_s": round(total - marks.get("customers", total), 2)}
    out["load_after"] = round(os.getloadavg()[0], 2)
    svc.db.dispose()
    return out


def run(quick: bool = False, meters: int | None = None, which: str = "both") -> dict[str, Any]:
    count = meters or (10_000 if quick else 100_000)
    figures: dict[str, Any] = {"meters": count, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = tmp / "meters.csv"
        write_file(data, count)
        figures["file_mb"] = round(data.stat().st_size / 1e6, 1)
        if which in ("sqlite", "both"):
            figures["sqlite"] = measure(str(tmp / "import.sqlite3"), data, tmp)
        if which in ("postgres", "both"):
            url = pg_fresh(PG_URL, report=True)
            if url is not None:
                figures["postgres"] = measure(url, data, tmp)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=None, help="default 100,000 (10,000 quick)")
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(json.dumps(run(args.quick, args.meters, args.db), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
