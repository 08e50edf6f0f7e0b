"""Run every benchmark and print the figures as JSON (`./run bench`, `--quick` for a smoke run).

Figures only: nothing here passes or fails on speed.  Each module exposes `run(quick) -> dict`.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODULES = ["bench_engine", "bench_meter", "bench_vending", "bench_xmlvend", "bench_hsm", "bench_import",
           "bench_delivery", "bench_payments", "bench_servers", "bench_web"]


def main() -> int:
    quick = "--quick" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    results: dict[str, object] = {}
    for name in MODULES:
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        started = time.perf_counter()
        figures = module.run(quick=quick)
        figures["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = {k: round(v) if isinstance(v, float) and v > 100 else v
                         for k, v in figures.items()}
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
