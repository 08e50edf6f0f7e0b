"""Web page loads at a utility's size: the meter register's first page, searches (number as
printed, name, address), a deep page, the last page, Next and Previous from deep pages (seeks),
a sort by customer, the customer list and a meter's page, with 1,000,000 meters and customers
on PostgreSQL.

The meters and customers go in with COPY (registration is not timed), then VACUUM ANALYZE as
a running database would have.  Each page is loaded through the whole web stack in-process
(session cookie, access policy, use case, template) `--repeat` times after one warm-up;
figures are milliseconds (median and slowest).  PostgreSQL comes from STS_BENCH_PG_URL
(default: local server, database sts_web_bench, dropped and re-created).

    python benchmarks/bench_web.py [--meters 1000000] [--repeat 10] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
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
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_web_bench")
SGC = "600002"
KEK = Path(tempfile.gettempdir()) / "sts_web_bench.kek"
FIRST = ("Thandi", "Sipho", "Lerato", "Kagiso", "Ama", "Kofi", "Aisha", "Juma", "Neo", "Zanele",
         "Mandla", "Precious", "Tumi", "Bongani", "Nomsa", "Yaw", "Fatou", "Moussa", "Grace",
         "Peter")
LAST = ("Dlamini", "Nkosi", "Mokoena", "Mensah", "Okafor", "Diallo", "Kamau", "Mwangi",
        "Ndlovu", "Khumalo", "Botha", "Naidoo", "Osei", "Traore", "Banda", "Phiri", "Mahlangu",
        "Sithole", "Zulu", "Moyo")
PLACES = ("Soweto", "Tembisa", "Alexandra", "Diepsloot", "Mamelodi", "Soshanguve", "Katlehong",
          "Orange Farm", "Ivory Park", "Khayelitsha", "Gugulethu", "Umlazi", "KwaMashu",
          "Mitchells Plain", "Atteridgeville", "Daveyton", "Thokoza", "Vosloorus", "Ga-Rankuwa",
          "Mabopane")


def drn(i: int) -> str:
    from sts.codec.pan import luhn_check_digit

    body = f"07{i:08d}"
    return body + str(luhn_check_digit(body))


def load(url: str, kek: Path, n: int) -> tuple[str, str]:
    """A utility with `n` meters, one customer each (COPY); the admin's username, password."""
    import sqlalchemy as sa

    from sts.codec.pan import MeterPan
    from sts.vending.config import Settings, open_service
    from sts.vending.registry import operators as operator_admin
    from sts.vending.registry.admin import Registry

    svc = open_service(Settings(db_url=url, kek_file=str(kek)), run_migrations=True)
    reg = Registry(svc.db, svc.sm, actor="bench")
    reg.add_utility("Bench")
    reg.add_sgc(SGC, utility="Bench")
    reg.add_key(SGC, 1, dkga=4, ea=7, base_date=2014)
    reg.add_tariff("Flat", price="2.50")
    password = secrets.token_hex(12)
    operator_admin.add_operator(reg, "bench-admin", "admin", password)
    with svc.db.begin() as conn:
        sgc_id = conn.scalar(sa.text("SELECT id FROM supply_groups"))
        key_id = conn.scalar(sa.text("SELECT id FROM vending_keys"))
        tariff_id = conn.scalar(sa.text("SELECT id FROM tariffs"))
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cur.copy("COPY customers (id, account_no, name, address, phone, debt_balance) "
                      "FROM STDIN") as copy:
            for i in range(1, n + 1):
                copy.write_row((i, f"B{i:08d}", f"{FIRST[i % 20]} {LAST[(i // 20) % 20]}",
                                f"{i % 997} Main Road, {PLACES[(i // 400) % 20]}", "", "0"))
        with cur.copy("COPY meters (pan, customer_id, tariff_id, sgc_id, key_id, ti, kt, ken, "
                      "mfr_code, service, status, status_reason, last_tid, tid_epoch, "
                      "max_epoch, last_hash, created_at, ami) FROM STDIN") as copy:
            for i in range(1, n + 1):
                pan = MeterPan.from_drn(drn(i)).pan
                copy.write_row((pan, i, tariff_id, sgc_id, key_id, 1, 2, 255, "07",
                                "electricity", "blocked" if i % 50 == 0 else "active", "", 0,
                                0, 0, "", "2026-01-01 00:00:00", False))
        conn.exec_driver_sql(f"SELECT setval('customers_id_seq', {n})")
    with svc.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE customers")
        conn.exec_driver_sql("VACUUM ANALYZE meters")
    svc.db.dispose()
    return "bench-admin", password


def measure(url: str, kek: Path, user: str, password: str, n: int,
            repeat: int) -> dict[str, Any]:
    from urllib.parse import quote

    from fastapi.testclient import TestClient

    from sts.codec.pan import MeterPan
    from sts.server.app import create_app
    from sts.vending.config import Settings, open_service

    svc = open_service(Settings(db_url=url, kek_file=str(kek)))
    client = TestClient(create_app(svc))
    login = client.get("/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', login)
    assert csrf
    client.post("/login", data={"csrf": csrf.group(1), "username": user, "password": password})
    some = drn(n // 2 + 7)
    spaced = " ".join(some[i:i + 4] for i in range(0, len(some), 4))
    last_page = -(-n // 50)

    def key(*values: str) -> str:  # a Next/Previous link's seek key (sts.vending.listing)
        return quote(json.dumps(list(values), separators=(",", ":")))

    def pan_at(k: int) -> str:  # the k-th meter in number order
        return MeterPan.from_drn(drn(k)).pan

    middle = last_page // 2
    pages = {
        "meters_first_page": "/admin/meters",
        "search_number_as_printed": f"/admin/meters?q={spaced}",
        "search_number_part": f"/admin/meters?q={some[3:9]}",
        "search_full_name": "/admin/meters?q=Thandi+Dlamini",
        "search_address": "/admin/meters?q=Soweto",
        "search_nothing_found": "/admin/meters?q=Nobody+Here",
        "meters_middle_page": f"/admin/meters?page={last_page // 2}",
        "meters_last_page": f"/admin/meters?page={last_page}",
        "meters_last_page_link": "/admin/meters?last=1",
        "meters_next_after_middle": f"/admin/meters?page={middle + 1}&after="
                                    + key(pan_at(middle * 50)),
        "meters_previous_before_last": f"/admin/meters?page={last_page - 1}&before="
                                       + key(pan_at((last_page - 1) * 50 + 1)),
        "meters_by_status_next_deep": "/admin/meters?sort=status&page=10001&after="
                                      + key("active", pan_at(n // 2 + 1)),
        "meters_by_status_page_100": "/admin/meters?sort=status&page=100",
        "meters_registered_page_100": "/admin/meters?sort=registered&order=desc&page=100",
        "customers_first_page": "/admin/customers",
        "customers_by_name_page_100": "/admin/customers?sort=name&page=100",
        "customers_search": "/admin/customers?q=mokoena",
        "meter_page": f"/meters/{some}",
    }
    out: dict[str, Any] = {}
    for name, path in pages.items():
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.status_code, resp.text[:300])
        found = re.search(r'id="[a-z-]*count" role="status">([^<]*)<', resp.text)
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            resp = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        out[name] = {"median_ms": round(statistics.median(times), 1),
                     "max_ms": round(max(times), 1),
                     **({"shows": " ".join(found.group(1).split())} if found else {})}
    svc.db.dispose()
    return out


def reuse(url: str, kek: Path) -> tuple[str, str]:
    """The database a previous run loaded (`--reuse`: loading a million rows takes minutes):
    migrated to the newest schema, with a new password for its admin."""
    from sts.vending.config import Settings, open_service
    from sts.vending.registry import operators as operator_admin
    from sts.vending.registry.admin import Registry

    svc = open_service(Settings(db_url=url, kek_file=str(kek)), run_migrations=True)
    password = secrets.token_hex(12)
    operator_admin.set_password(Registry(svc.db, svc.sm, actor="bench"), "bench-admin",
                                password)
    svc.db.dispose()
    return "bench-admin", password


def run(quick: bool = False, meters: int | None = None, repeat: int = 10,
        reused: bool = False) -> dict[str, Any]:
    n = meters or (20_000 if quick else 1_000_000)
    url = PG_URL if reused else pg_fresh(PG_URL, report=True)
    if url is None:
        return {"skipped": f"PostgreSQL not reachable at {PG_URL}"}
    with tempfile.TemporaryDirectory() as d:
        kek = KEK if reused else Path(d) / "kek.hex"
        if not reused:
            kek = KEK
            kek.write_text(secrets.token_bytes(32).hex())
            kek.chmod(0o600)
        started = time.perf_counter()
        user, password = reuse(url, kek) if reused else load(url, kek, n)
        out: dict[str, Any] = {"meters": n, "load_s": round(time.perf_counter() - started, 1),
                               "load_average": round(os.getloadavg()[0], 1)}
        out["pages"] = measure(url, kek, user, password, n, repeat)
        out["load_average_after"] = round(os.getloadavg()[0], 1)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reuse", action="store_true",
                        help=f"measure the database a previous run loaded (KEK in {KEK})")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick, meters=args.meters, repeat=args.repeat,
                         reused=args.reuse), indent=2))
