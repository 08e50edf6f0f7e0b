"""The PKCS#11 module (SoftHSM2) against the software module, same run, same machine.

Figures: decoder-key derivations/s with no cache (the module's cost per new meter), purchases/s
through the service's sale path (first sale of each meter: a derivation each; second sale: the
decoder key cache), and key change campaign meters/s (two derivations per meter).  SQLite always;
PostgreSQL too when reachable (STS_BENCH_PG_URL, default the local server).  Needs softhsm2-util.

    python benchmarks/bench_hsm.py [--quick]
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import pg_fresh  # noqa: E402

PG_URL = os.environ.get("STS_BENCH_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_hsm_bench")
LIBS = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
TOKEN, PIN = "sts-bench", "112233"
VK = bytes.fromhex("abababababababab949494949494949401234567")
NEW_VK = bytes(reversed(VK))
SGC = "999960"


def _softhsm(tmp: Path) -> str | None:
    lib = next((p for p in LIBS if os.path.exists(p)), None)
    util = shutil.which("softhsm2-util")
    if lib is None or util is None:
        return None
    (tmp / "tokens").mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run([util, "--init-token", "--free", "--label", TOKEN, "--so-pin", "87654321",
                    "--pin", PIN], check=True, capture_output=True)
    os.environ["STS_PKCS11_PIN"] = PIN
    return lib



def pan_for(i: int) -> str:
    from sts.codec.pan import MeterPan, luhn_check_digit

    body = f"08{70000000 + i:08d}"
    return MeterPan.from_drn(body + str(luhn_check_digit(body))).pan


def _service(kind: str, db_url: str, kek: str, lib: str, meters: int) -> tuple[Any, str, list[str]]:
    from sqlalchemy import insert, select

    from sts.vending.config import Settings, open_service
    from sts.vending.registry.admin import Registry, fill_demo
    from sts.vending.storage.tables import meters as meters_t
    from sts.vending.storage.tables import supply_groups, tariffs, vending_keys

    settings = Settings(db_url=db_url, kek_file=kek, lookup_limit=10**6, security_module=kind,
                        pkcs11_lib=lib, pkcs11_token=TOKEN)
    svc = open_service(settings, run_migrations=True)
    reg = Registry(svc.db, svc.sm, actor="bench")
    info = fill_demo(reg, production_tables=False, meters_count=1)
    reg.add_sgc(SGC, utility="Demo Utility")
    reg.add_key(SGC, 1, raw=VK, base_date=2014)
    reg.add_key(SGC, 2, raw=NEW_VK, base_date=2014, make_current=False)
    reg.authorise_vendor("Demo Vendor", SGC)
    pans = [pan_for(i) for i in range(meters)]
    with svc.db.begin() as conn:
        sid = conn.scalar(select(supply_groups.c.id).where(supply_groups.c.sgc == SGC))
        kid = conn.scalar(select(vending_keys.c.id).where(vending_keys.c.sgc_id == sid,
                                                         vending_keys.c.krn == 1))
        tid = conn.scalar(select(tariffs.c.id).where(tariffs.c.name == "Flat"))
        conn.execute(insert(meters_t), [
            {"pan": p, "tariff_id": tid, "sgc_id": sid, "key_id": kid, "ti": 1, "kt": 2,
             "ken": 255, "mfr_code": p[6:8], "service": "electricity", "status": "active",
             "status_reason": "", "last_tid": 0, "tid_epoch": 0, "max_epoch": 0,
             "last_hash": "", "created_at": svc.now()} for p in pans])
    return svc, info["api_keys"]["vendor"], pans


def _derivations(svc: Any, count: int) -> float:
    """Decoder keys/s with the cache off: every call goes to where the key lives."""
    from sts.vending.keys.security_module import MeterIdentity

    with svc.db.read() as conn:
        key = svc.load_meter(conn, pan_for(0), lock=False).key.record
    sm = svc.sm
    saved = getattr(sm, "cache_seconds", None)
    if saved is not None:
        sm.cache_seconds = 0
    else:
        sm._derived.clear()
    t0 = time.perf_counter()
    for i in range(count):
        if saved is None:
            sm._derived.clear()
        sm.meter_key(key, MeterIdentity(pan_for(i), 2, 1))
    rate = count / (time.perf_counter() - t0)
    if saved is not None:
        sm.cache_seconds = saved
    return rate


def _purchases(svc: Any, api_key: str, pans: list[str]) -> float:
    t0 = time.perf_counter()
    for pan in pans:
        text, created = svc.purchase_json(str(uuid.uuid4()), {"meter": pan, "amount": "10"},
                                          api_key)
        assert created and '"tokens"' in text
    return len(pans) / (time.perf_counter() - t0)


def _campaign(svc: Any, meters: int) -> float:
    from sts.vending.usecases import campaign as camp

    name = f"bench-{secrets.token_hex(3)}"
    camp.create(svc, name, sgc=SGC, to_krn=2, from_krn=1)
    t0 = time.perf_counter()
    done = sum(1 for r in camp.run(svc, name) if r["status"] == "done")
    rate = done / (time.perf_counter() - t0)
    assert done == meters, done
    return rate


def run(quick: bool = False) -> dict[str, Any]:
    meters = 100 if quick else 1000
    derive = 500 if quick else 5000
    out: dict[str, Any] = {"meters": meters}
    with tempfile.TemporaryDirectory(prefix="sts-bench-hsm-") as d:
        tmp = Path(d)
        lib = _softhsm(tmp)
        if lib is None:
            return {"skipped": "SoftHSM2 is not installed"}
        kek = tmp / "kek.hex"
        kek.write_text(secrets.token_bytes(32).hex())
        kek.chmod(0o600)
        databases: list[tuple[str, str | None]] = [("sqlite", None)]
        pg = pg_fresh(PG_URL)
        if pg is not None:
            databases.append(("postgres", pg))
        for db_name, url in databases:
            for kind in ("software", "pkcs11"):
                if url is None:
                    db_url = str(tmp / f"{kind}.sqlite3")
                else:
                    db_url = url
                    if kind == "pkcs11":  # a fresh database for the second module
                        pg = pg_fresh(PG_URL)
                        assert pg is not None
                svc, api_key, pans = _service(kind, db_url, str(kek), lib, meters)
                try:
                    tag = f"{db_name}_{kind}"
                    if db_name == "sqlite":
                        out[f"derivations_per_s_{kind}"] = round(_derivations(svc, derive))
                    out[f"{tag}_purchases_per_s_first_sale"] = round(_purchases(svc, api_key,
                                                                                pans), 1)
                    out[f"{tag}_purchases_per_s_cached_key"] = round(_purchases(svc, api_key,
                                                                                pans), 1)
                    out[f"{tag}_campaign_meters_per_s"] = round(_campaign(svc, meters), 1)
                finally:
                    svc.sm.close()
                    svc.db.dispose()
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
