"""Run a real `sts serve` (uvicorn) subprocess on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, db_url: str, kek_file: str, *, workers: int = 1, log: Path | None = None,
                 extra_env: dict[str, str] | None = None, args: list[str] | None = None,
                 verify: Any = True, program: list[str] | None = None) -> None:
        self.db_url, self.kek_file, self.workers = db_url, kek_file, workers
        self.program = program or [str(Path(sys.executable).parent / "sts")]
        self.port = free_port()
        self.args = args or []  # more `sts serve` options, e.g. --tls-cert FILE
        self.verify = verify  # for https: the CA file the server's certificate chains to
        scheme = "https" if "--tls-cert" in self.args else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.log = log
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> Server:  # generous: CI shares 2 cores
        return self.launch().wait_ready(timeout)

    def launch(self) -> Server:
        """Start the process without waiting (several servers then start side by side)."""
        # the browser tests sign in from one address many times a minute
        env = (os.environ | {"STS_LOOKUP_LIMIT": "100000", "STS_SERVE_SIGNIN_LIMIT": "100000"}
               | self.extra_env)
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*self.program, "serve", "--db", self.db_url, "--kek-file", self.kek_file, "--port",
             str(self.port), "--workers", str(self.workers), "--log-level", "info", *self.args],
            stdout=out, stderr=out, env=env, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 120.0) -> Server:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1,
                             verify=self.verify).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling for readiness, not waiting for an outcome
        self.kill()
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        """SIGKILL the whole process group (uvicorn's supervisor and its workers)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
