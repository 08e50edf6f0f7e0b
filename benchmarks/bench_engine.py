"""Engine throughput: tokens/s for single calls and for `sts generate` batches, decodes/s.

Every token is for a different meter (as a vending system or a key-change campaign sees
them): a fresh MeterPAN per token, so nothing is cached per meter.  Three views:

- `single ...`: one `MeterKey.derive` + `generate` (or one `decode`) call per token;
- `batch ...`: `run_batch` in this process (the engine alone);
  both count this process's CPU time;
- `cli ...`: the `sts generate` / `sts decode` commands on a file of lines, process start and
  JSON in/out included, as a user runs them; `cpu` figures count the child's CPU time (stable
  on a shared machine), the others wall time; `cli start` is the process start alone (no
  lines).  Pin to one core with `taskset -c 1`.

Figures only; nothing here asserts speed.  Run: `./run bench` (all benchmarks) or
`python benchmarks/bench_engine.py [--quick] [--only single|batch|cli]`.
"""

from __future__ import annotations

import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sts.codec.pan import MeterPan, luhn_check_digit
from sts.crypto.sta import sample_tables, table_set
from sts.engine import MeterKey, TokenRequest, decode, generate
from sts.engine.batch import run_batch

VK16 = bytes.fromhex("abababababababab949494949494949401234567")
VK8 = bytes.fromhex("abababababababab")
COMBOS = {"DKGA02+EA07": (2, 7, VK8), "DKGA04+EA07": (4, 7, VK16), "DKGA04+EA11": (4, 11, VK16)}


def _clock() -> float:
    """CPU seconds of this process: the figures are for one core, and on a shared machine
    wall time mostly measures the neighbours (equal to wall time on an idle machine)."""
    return time.process_time()


def _tables_name() -> tuple[str, str | None]:
    path = os.environ.get("STS_STA_TABLES")
    default = Path(__file__).resolve().parents[2] / "shared" / "vectors" / "sta-tables.json"
    if not path and default.is_file():
        path = str(default)
    return ("production", path) if path else ("sample", None)


def pans(n: int, seed: int = 7) -> list[MeterPan]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        body = f"{rng.randrange(10**10):010d}"
        out.append(MeterPan("600727", body + str(luhn_check_digit(body))))
    return out


def bench_single(n: int) -> dict[str, float]:
    name, path = _tables_name()
    tables = table_set(name, path) if path else sample_tables()
    out: dict[str, float] = {}
    for label, (dkga, ea, vk) in COMBOS.items():
        meters = pans(n)
        t0 = _clock()
        for i, pan in enumerate(meters):
            meter = MeterKey.derive(dkga=dkga, vending_key=vk, pan=pan, kt=2, sgc="123456", ti=1,
                                    krn=1, ea=ea, base_date=2014, table_set=tables)
            generate(meter, TokenRequest(0, 0, {"units": "12.5"}, tid=5_000_000 + i))
        out[f"single {label} tokens/s"] = n / (_clock() - t0)
        # decode with the meter's own key (as a meter or a verification service does)
        keys = [MeterKey.derive(dkga=dkga, vending_key=vk, pan=p, kt=2, sgc="123456", ti=1, krn=1,
                                ea=ea, base_date=2014, table_set=tables) for p in meters]
        tokens = [generate(k, TokenRequest(0, 0, {"units": "1"}, tid=7 + i)).tokens[0].token
                  for i, k in enumerate(keys)]
        t0 = _clock()
        for tok, k in zip(tokens, keys, strict=True):
            decode(tok, k)
        out[f"decode {label} decodes/s"] = n / (_clock() - t0)
    return out


def batch_lines(n: int, dkga: int, ea: int, vk: bytes, table_name: str) -> list[str]:
    lines = []
    for i, pan in enumerate(pans(n, seed=dkga * 100 + ea)):
        meter = {"pan": pan.pan, "dkga": dkga, "ea": ea, "vending_key": vk.hex(), "kt": 2,
                 "sgc": "123456", "ti": 1, "krn": 1, "ken": 255, "base_date": 2014}
        if ea == 7:
            meter["table_set"] = table_name
        minute = 10 + i % 1400
        request = {"class": 0, "subclass": 0, "rnd": i % 16, "units": f"{1 + i % 500}.5",
                   "issued_at": f"2026-11-21T{minute // 60:02d}:{minute % 60:02d}:00"}
        lines.append(json.dumps({"id": f"b{i}", "meter": meter, "request": request}) + "\n")
    return lines


def bench_batch(n: int) -> dict[str, float]:
    name, path = _tables_name()
    out: dict[str, float] = {}
    for label, (dkga, ea, vk) in COMBOS.items():
        lines = batch_lines(n, dkga, ea, vk, name)
        sink = io.StringIO()
        t0 = _clock()
        failed = 0
        for text, ok in run_batch(lines, "generate", path):
            failed += not ok
            sink.write(text)
            sink.write("\n")
        elapsed = _clock() - t0
        assert failed == 0, f"{failed} batch lines failed"
        out[f"batch {label} tokens/s"] = n / elapsed
        # decode the same tokens back as a batch (each line carries its meter)
        made = [json.loads(text) for text in sink.getvalue().splitlines()]
        decode_lines = [
            json.dumps({"id": m["id"], "token": m["tokens"][0], "meter": json.loads(src)["meter"]})
            for m, src in zip(made, lines, strict=True)
        ]
        t0 = _clock()
        failed = sum(not ok for _, ok in run_batch(decode_lines, "decode", path))
        elapsed = _clock() - t0
        assert failed == 0, f"{failed} decode lines failed"
        out[f"batch decode {label} decodes/s"] = n / elapsed
    return out


_CLI = "import sys; from sts.cli import main; sys.exit(main())"


def _run_cli(job: str, src: Path, dst: Path, tables: str | None) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one `sts <job>` run over a file."""
    env = dict(os.environ)
    if tables:
        env["STS_STA_TABLES"] = tables
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with src.open("rb") as fin, dst.open("wb") as fout:
        done = subprocess.run([sys.executable, "-c", _CLI, job], stdin=fin, stdout=fout,
                              env=env, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, f"sts {job} failed ({done.returncode})"
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def bench_cli(n: int, repeat: int = 1) -> dict[str, float]:
    """`sts generate` then `sts decode` of its tokens, n lines each, best of `repeat`; and the
    process start alone (`sts generate` of no lines, best of 5), in milliseconds."""
    name, path = _tables_name()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        empty = work / "empty.jsonl"
        empty.write_text("")
        starts = [_run_cli("generate", empty, work / "none.jsonl", path) for _ in range(5)]
        out["cli start ms"] = 1000 * min(w for w, _ in starts)
        out["cli start cpu-ms"] = 1000 * min(c for _, c in starts)
        for label, (dkga, ea, vk) in COMBOS.items():
            lines = batch_lines(n, dkga, ea, vk, name)
            src, made = work / "in.jsonl", work / "made.jsonl"
            src.write_text("".join(lines))
            runs = [_run_cli("generate", src, made, path) for _ in range(repeat)]
            out[f"cli generate {label} tokens/s"] = n / min(w for w, _ in runs)
            out[f"cli generate {label} tokens/cpu-s"] = n / min(c for _, c in runs)
            decode_src = work / "decode.jsonl"
            with decode_src.open("w") as f:
                for m, line in zip(made.read_text().splitlines(), lines, strict=True):
                    meter = json.loads(line)["meter"]
                    f.write(json.dumps({"id": json.loads(m)["id"],
                                        "token": json.loads(m)["tokens"][0], "meter": meter}))
                    f.write("\n")
            runs = [_run_cli("decode", decode_src, work / "out.jsonl", path)
                    for _ in range(repeat)]
            out[f"cli decode {label} decodes/s"] = n / min(w for w, _ in runs)
            out[f"cli decode {label} decodes/cpu-s"] = n / min(c for _, c in runs)
    return out


def run(quick: bool = False, only: str | None = None) -> dict[str, Any]:
    single_n = 2_000 if quick else 20_000
    batch_n = 10_000 if quick else 100_000
    figures: dict[str, Any] = {"tables": _tables_name()[0], "single_n": single_n,
                               "batch_n": batch_n}
    if only in (None, "single"):
        figures.update(bench_single(single_n))
    if only in (None, "batch"):
        figures.update(bench_batch(batch_n))
    if only in (None, "cli"):
        figures.update(bench_cli(batch_n, repeat=1 if quick else 3))
    return figures


if __name__ == "__main__":
    chosen = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    result = run(quick="--quick" in sys.argv, only=chosen)
    print(json.dumps({k: round(v) if isinstance(v, float) else v for k, v in result.items()},
                     indent=1))
