"""Vending server throughput: purchases/s and latency over HTTP, SQLite and PostgreSQL.

The server is a real `sts serve --workers 2` (uvicorn) on a loopback port; the load comes from
a separate process (asyncio, keep-alive HTTP/1.1, a fixed number of requests in flight), bounded by count and
time.  Each purchase is a distinct meter sale with its own UUID.  PostgreSQL comes from
STS_BENCH_PG_URL (default: local server, database sts_vending_bench); it is skipped if
unreachable.

    python benchmarks/bench_vending.py [--quick]
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
                        "postgresql+psycopg://postgres@127.0.0.1:5432/sts_vending_bench")


class _RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams.

    httpx costs about 1.5 ms of client CPU per request, which on a 2-core machine would eat the
    server's share; this costs a few tens of microseconds.  Responses are read fully and their
    status checked; bodies are parsed only to confirm tokens came back.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(data)}\r\n{self.extra}\r\n")
        self.writer.write(head.encode() + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)


def _load(port: int, key: str, pans: list[str], count: int, seconds: float, inflight: int,
          out: Any) -> None:
    async def main() -> dict[str, Any]:
        lat: list[float] = []
        errors = 0
        sent = 0
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal sent, errors
            client = _RawClient("127.0.0.1", port, {"Authorization": f"Bearer {key}"})
            while sent < count and time.monotonic() < deadline:
                i = sent
                sent += 1
                t0 = time.perf_counter()
                status, body = await client.post(
                    f"/v1/purchases/{uuid.uuid4()}",
                    {"meter": pans[i % len(pans)], "amount": "20"})
                if status == 201 and b'"tokens"' in body:
                    lat.append(time.perf_counter() - t0)
                else:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        elapsed = time.perf_counter() - start
        lat.sort()
        return {
            "purchases": len(lat), "errors": errors, "seconds": round(elapsed, 2),
            "purchases_per_s": round(len(lat) / elapsed, 1) if elapsed else 0.0,
            "p50_ms": round(statistics.median(lat) * 1000, 1) if lat else None,
            "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1)
            if lat else None,
        }

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

    from sts.vending.config import Settings, open_service
    from sts.vending.registry.admin import Registry, fill_demo

    kek = tmp / f"kek-{secrets.token_hex(4)}"
    kek.write_text(secrets.token_bytes(32).hex())
    kek.chmod(0o600)  # a KEK file must be private
    svc = open_service(Settings(db_url=db_url, kek_file=str(kek)), run_migrations=True)
    info = fill_demo(Registry(svc.db, svc.sm), production_tables=False, meters_count=meters)
    svc.db.dispose()
    server = Server(db_url, str(kek), workers=2, extra_env={"STS_DB_POOL": "16"}).start()
    try:
        ctx = multiprocessing.get_context("spawn")
        q = ctx.Queue()
        p = ctx.Process(target=_load, args=(server.port, info["api_keys"]["vendor"],
                                            info["meters"], count, seconds, inflight, q))
        p.start()
        result: dict[str, Any] = q.get(timeout=seconds + 120)
        p.join()
    finally:
        server.stop()
    return result


def run(quick: bool = False) -> dict[str, Any]:
    count, seconds = (400, 20.0) if quick else (4000, 60.0)
    params: Params = {"count": count, "seconds": seconds, "inflight": 16, "meters": 50}
    out: dict[str, Any] = {"workers": 2, **params}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out["sqlite"] = bench_backend(str(tmp / "bench.sqlite3"), tmp, **params)
        pg = pg_fresh(PG_URL)
        out["postgresql"] = (bench_backend(pg, tmp, **params) if pg
                             else {"skipped": f"PostgreSQL not reachable at {PG_URL}"})
    return out


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
