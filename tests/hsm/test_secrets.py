"""With the PKCS#11 module, no vending key reaches the database, the logs, the responses, the
CLI's output or the token's own files in clear (the same scan as for the software module)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sts.cli.vending import admin
from tests.fixtures import TEST_VENDING_KEY, known_pan, make_demo
from tests.hsm.conftest import SoftHsm
from tests.support.leaks import after_sale_texts, database_text, needles


def _all_needles() -> list[bytes]:
    padded = TEST_VENDING_KEY.ljust(32, b"\0")  # the form the token holds
    return [*needles(TEST_VENDING_KEY), padded, padded.hex().encode()]


def test_no_key_material_anywhere(hsm_service: Any, hsm_settings: Any, clock: Any,
                                  softhsm: SoftHsm, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    seen: list[str] = []
    try:
        demo = make_demo(hsm_service, clock)
        pan = known_pan()
        pid = str(uuid.uuid4())
        for resp in (
            demo.buy(pan, "100", pid), demo.buy(pan, "100", pid), demo.buy(pan, "99", pid),
        ):
            seen.append(resp.text)
        seen += after_sale_texts(demo, pan)
        seen.append(repr(hsm_service.sm))
        seen.append(repr(demo.registry.list_keys()))
        out = CliRunner().invoke(admin, ["--db", hsm_settings.db_url, "--kek-file",
                                         hsm_settings.kek_file, "key", "list", "--check", "--json"],
                                 env=softhsm.env())
        assert out.exit_code == 0, out.output
        assert "pkcs11:" in out.output
        seen.append(out.output)
        seen += database_text(hsm_service.db, _all_needles())
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    seen.append(caplog.text)
    text = "\n".join(seen).encode()
    for n in _all_needles():
        assert n not in text
    files = [f for f in (softhsm.directory / "tokens").rglob("*") if f.is_file()]
    if hsm_settings.db_url.startswith("sqlite"):
        path = Path(hsm_settings.db_url.split(":///", 1)[1])
        files += list(path.parent.glob(path.name + "*"))
    assert files
    for f in files:
        data = f.read_bytes()
        for n in _all_needles():
            assert n not in data, f
