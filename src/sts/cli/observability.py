"""What `sts serve` sets up before anything imports prometheus-client: the multiprocess
metrics directory its workers share (`sts.server.metrics`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir() -> Path | None:
    """Point prometheus-client's multiprocess mode at a directory the workers share: the
    operator's (emptied: counts restart with the server, as Prometheus expects) or a new
    private temporary one, removed when `sts serve` ends (returned then, else None)."""
    given = os.environ.get(ENV_DIR)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return None
    made = Path(tempfile.mkdtemp(prefix="sts-metrics-"))
    os.environ[ENV_DIR] = str(made)
    return made


def remove_metrics_dir(path: Path | None) -> None:
    """Remove the directory `metrics_dir` made (and the variable naming it)."""
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
        if os.environ.get(ENV_DIR) == str(path):
            del os.environ[ENV_DIR]
