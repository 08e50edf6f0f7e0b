"""A real SoftHSM2 token for the PKCS#11 tests, made with `softhsm2-util` in a temporary
SOFTHSM2_CONF directory (one per test process, since PKCS#11 reads its configuration once per
process).  Under CI=true a missing SoftHSM2 is a failure; elsewhere these tests are skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

SOFTHSM_LIBS = ("/usr/lib/softhsm/libsofthsm2.so",
                "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                "/usr/local/lib/softhsm/libsofthsm2.so")
TOKEN = "sts-test"
PIN = "246810"
SO_PIN = "13579135"


class ManualClock:
    """Monotonic seconds that move only when told to (the decoder key cache's clock)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class SoftHsm:
    lib: str
    conf: str
    token: str
    pin: str
    directory: Path

    def env(self, pin: str | None = None) -> dict[str, str]:
        return {"SOFTHSM2_CONF": self.conf, "STS_SECURITY_MODULE": "pkcs11",
                "STS_PKCS11_LIB": self.lib, "STS_PKCS11_TOKEN": self.token,
                "STS_PKCS11_PIN": pin or self.pin}

    def module(self, *, pin: str | None = None, lib: str | None = None,
               clock: Any = None, cache_seconds: float = 300.0, software: Any = None,
               sta_tables: str | None = None) -> Any:
        from sts.vending.pkcs11_module import Pkcs11SecurityModule

        chosen = pin or self.pin
        kw: dict[str, Any] = {}
        if clock is not None:
            kw["clock"] = clock
        return Pkcs11SecurityModule(lib or self.lib, self.token, pin=lambda: chosen,
                                    cache_seconds=cache_seconds, software=software,
                                    sta_tables=sta_tables, **kw)


def _find_lib() -> str | None:
    for path in SOFTHSM_LIBS:
        if os.path.exists(path):
            return path
    return None


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    lib = _find_lib()
    util = shutil.which("softhsm2-util")
    if lib is None or util is None:
        if IN_CI:
            raise RuntimeError("CI run without SoftHSM2 (softhsm2-util and libsofthsm2.so)")
        pytest.skip("SoftHSM2 is not installed")
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\n"
                    "objectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n")
    env = os.environ | {"SOFTHSM2_CONF": str(conf)}
    subprocess.run([util, "--init-token", "--free", "--label", TOKEN, "--so-pin", SO_PIN,
                    "--pin", PIN], env=env, check=True, capture_output=True)
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read by the library when first loaded
    yield SoftHsm(lib, str(conf), TOKEN, PIN, directory)
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture
def hsm_clock() -> ManualClock:
    return ManualClock()
