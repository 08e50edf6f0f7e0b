"""Raw vending keys never leave the security module: not in responses, logs, errors, exports or
the database (which holds only AES-GCM blobs under a KEK kept outside it)."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sts.vending.keys.software import SoftwareSecurityModule
from tests.fixtures import TEST_VENDING_KEY, known_pan, make_demo
from tests.support.leaks import after_sale_texts, database_text, needles


def test_vending_key_never_leaks(service: Any, clock: Any, settings: Any,
                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)  # log every statement
    try:
        demo = make_demo(service, clock)
        pan = known_pan()
        seen: list[str] = []
        pid = str(uuid.uuid4())
        for resp in (
            demo.buy(pan, "100", pid), demo.buy(pan, "100", pid), demo.buy(pan, "1"),
            demo.buy(pan, "99", pid),
        ):
            seen.append(resp.text)
        seen += after_sale_texts(demo, pan)
        seen.append(demo.client.get("/openapi.json").text)
        seen.append(repr(demo.registry.list_keys()))
        seen.append(repr(service.sm))
        # a wrong KEK: the error names the key, never its bytes
        other = SoftwareSecurityModule(b"\x01" * 32)
        from sts.errors import ConfigError

        with service.db.read() as conn:
            m = service.load_meter(conn, pan, lock=False)
        with pytest.raises(ConfigError) as info:
            other.meter_key(m.key.record, m.identity())
        seen.append(str(info.value) + repr(info.value))
        # CLI exports
        from sts.cli.vending import admin

        out = CliRunner().invoke(admin, ["--db", settings.db_url, "--kek-file",
                                         settings.kek_file, "key", "list"])
        assert out.exit_code == 0, out.output
        seen.append(out.output)
        # everything in the database, as text and as bytes
        seen += database_text(service.db, needles(TEST_VENDING_KEY))
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    seen.append(caplog.text)
    text = "\n".join(seen).encode()
    for n in needles(TEST_VENDING_KEY):
        assert n not in text
    if settings.db_url.startswith("sqlite"):
        path = Path(settings.db_url.split(":///", 1)[1])
        for f in path.parent.glob(path.name + "*"):
            data = f.read_bytes()
            for n in needles(TEST_VENDING_KEY):
                assert n not in data, f


def test_blob_is_bound_to_its_sgc_and_krn(service: Any) -> None:
    from dataclasses import replace

    from sts.errors import ConfigError
    from sts.vending.keys.security_module import KeyRecord, MeterIdentity

    sm = service.sm
    blob = sm.import_key(TEST_VENDING_KEY, sgc="123456", krn=1, dkga=4)
    rec = KeyRecord(1, "123456", 1, "VUDK", 4, 7, 2014, "sample", "software", blob)
    ident = MeterIdentity(known_pan(), 2, 1)
    assert sm.meter_key(rec, ident).decoder_key
    with pytest.raises(ConfigError):
        sm.meter_key(replace(rec, krn=2), ident)
