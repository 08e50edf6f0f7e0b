"""XMLVend's cost per sale: credit vends/s through /xmlvend against purchases/s through /v1, in
the same run of one server, on PostgreSQL (SQLite too with --sqlite).

The server is a real `sts serve --workers 2` on a loopback port with the demo data (its demo
XMLVend client, Hexing profile); the load comes from a separate process (asyncio, keep-alive
HTTP/1.1, 16 requests in flight), bounded by count and time: first /v1 purchases, then the
same number of XMLVend credit vends (each with its own msgID), then /v1 again, and the two /v1
figures are averaged.  The XML layer's cost per sale is the difference of the two wall times
per sale at full load.  PostgreSQL comes from STS_BENCH_PG_URL (default: local server,
database sts_xmlvend_bench); it is skipped if unreachable.

    python benchmarks/bench_xmlvend.py [--quick] [--sqlite]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, TypedDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import pg_fresh  # noqa: E402

PG_URL = os.environ.get("STS_BENCH_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_xmlvend_bench")
BASE = "http://www.nrs.eskom.co.za/xmlvend/base/2.1/schema"
REV = "http://www.nrs.eskom.co.za/xmlvend/revenue/2.1/schema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def credit_vend(x: dict[str, str], n: int, msno: str) -> bytes:
    """A credit vend as a Hexing-style client writes it (GECOL's layout)."""
    return (
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        f'<soapenv:Body><ns2:creditVendReq xmlns:ns2="{REV}" xmlns:xsi="{XSI}" '
        'xsi:type="ns2:CreditVendReq">'
        f'<clientID xmlns="{BASE}" xsi:type="EANDeviceID" ean="{x["client_id"]}"/>'
        f'<terminalID xmlns="{BASE}" xsi:type="GenericDeviceID" id="{x["terminal_id"]}"/>'
        f'<msgID xmlns="{BASE}" dateTime="20250601120000" uniqueNumber="{n}"/>'
        f'<authCred xmlns="{BASE}"><opName>{x["operator"]}</opName>'
        f'<password>{x["password"]}</password></authCred>'
        f'<resource xmlns="{BASE}" xsi:type="Electricity"/>'
        f'<idMethod xmlns="{BASE}" xsi:type="VendIDMethod"><meterIdentifier '
        f'xsi:type="MeterNumber" msno="{msno}"/></idMethod>'
        '<ns2:purchaseValue xsi:type="ns2:PurchaseValueCurrency"><ns2:amt value="20" '
        'symbol="ZAR"/></ns2:purchaseValue></ns2:creditVendReq></soapenv:Body>'
        "</soapenv:Envelope>").encode()


class _Raw:
    """A minimal keep-alive HTTP/1.1 client (httpx would take the server's CPU share)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: "
                          f"{len(body)}\r\n{headers}\r\n".encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(lines[0].split()[1]), await self.reader.readexactly(length)


def _load(port: int, kind: str, info: dict[str, Any], msnos: list[str], count: int,
          seconds: float, inflight: int, start_n: int, out: Any) -> None:
    key, x, pans = info["api_keys"]["vendor"], info["xmlvend"], info["meters"]

    async def main() -> dict[str, Any]:
        lat: list[float] = []
        errors = 0
        sent = 0
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal sent, errors
            client = _Raw(port)
            while sent < count and time.monotonic() < deadline:
                i = sent
                sent += 1
                t0 = time.perf_counter()
                if kind == "v1":
                    body = json.dumps({"meter": pans[i % len(pans)], "amount": "20"}).encode()
                    status, answer = await client.post(
                        f"/v1/purchases/{uuid.uuid4()}", body,
                        f"Content-Type: application/json\r\nAuthorization: Bearer {key}\r\n")
                    good = status == 201 and b'"tokens"' in answer
                else:
                    status, answer = await client.post(
                        "/xmlvend", credit_vend(x, start_n + i, msnos[i % len(msnos)]),
                        "Content-Type: text/xml; charset=utf-8\r\n")
                    good = status == 200 and b"stsCipher" in answer
                if good:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        elapsed = time.perf_counter() - start
        lat.sort()
        return {"sales": len(lat), "errors": errors, "seconds": round(elapsed, 2),
                "per_s": round(len(lat) / elapsed, 1) if elapsed else 0.0,
                "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
                "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1)
                if lat else None}

    out.put(asyncio.run(main()))


class Params(TypedDict):
    """bench_backend's keyword arguments, as run() passes them."""

    count: int
    seconds: float
    inflight: int
    meters: int


def bench_backend(db_url: str, tmp: Path, *, count: int, seconds: float, inflight: int,
                  meters: int) -> dict[str, Any]:
    from tests.support.server import Server

    from sts.codec.pan import parse_pan
    from sts.vending.config import Settings, open_service
    from sts.vending.registry.admin import Registry, fill_demo

    kek = tmp / f"kek-{secrets.token_hex(4)}"
    kek.write_text(secrets.token_bytes(32).hex())
    kek.chmod(0o600)  # the server refuses a key file others may read
    svc = open_service(Settings(db_url=db_url, kek_file=str(kek)), run_migrations=True)
    info = fill_demo(Registry(svc.db, svc.sm), production_tables=False, meters_count=meters)
    svc.db.dispose()
    msnos = [parse_pan(p).drn for p in info["meters"]]
    server = Server(db_url, str(kek), workers=2, extra_env={"STS_DB_POOL": "16"}).start()
    out: dict[str, Any] = {}
    try:
        ctx = multiprocessing.get_context("spawn")
        n = 1
        for phase in ("v1", "xmlvend", "v1_again"):
            q = ctx.Queue()
            p = ctx.Process(target=_load, args=(server.port, phase.removesuffix("_again"),
                                                info, msnos, count, seconds, inflight, n, q))
            p.start()
            out[phase] = q.get(timeout=seconds + 180)
            p.join()
            n += count
    finally:
        server.stop()
    v1 = (out["v1"]["per_s"] + out.pop("v1_again")["per_s"]) / 2
    xv = out["xmlvend"]["per_s"]
    out["v1"]["per_s_mean"] = round(v1, 1)
    if v1 and xv:
        out["xmlvend_vs_v1"] = round(xv / v1, 2)
        out["xml_layer_ms_per_sale"] = round(1000 / xv - 1000 / v1, 2)
    return out


def run(quick: bool = False, sqlite: bool = False) -> dict[str, Any]:
    count, seconds = (300, 20.0) if quick else (3000, 60.0)
    params: Params = {"count": count, "seconds": seconds, "inflight": 16, "meters": 50}
    out: dict[str, Any] = {"workers": 2, **params}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        pg = pg_fresh(PG_URL)
        out["postgresql"] = (bench_backend(pg, tmp, **params) if pg
                             else {"skipped": f"PostgreSQL not reachable at {PG_URL}"})
        if sqlite:
            out["sqlite"] = bench_backend(str(tmp / "bench.sqlite3"), tmp, **params)
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv, sqlite="--sqlite" in sys.argv),
                     indent=2))
