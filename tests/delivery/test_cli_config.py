"""The delivery CLI (export-sim audited and owner-only, show, resend) and the settings file."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sts.cli import cli
from sts.delivery.config import DeliveryConfig
from sts.errors import ConfigError, InputError
from tests.fixtures import Demo


def test_export_sim_show_and_resend(demo: Demo, settings: Any, tmp_path: Path) -> None:
    from sqlalchemy import select

    from sts.vending.storage.tables import audit_log

    db = demo.service.db.url
    out = tmp_path / "meters.jsonl"
    runner = CliRunner()
    res = runner.invoke(cli, ["admin", "meter", "export-sim", "--db", db, "--out", str(out),
                              demo.meters[0], "--kek-file", settings.kek_file])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["pan"] for x in lines] == [demo.meters[0]]
    assert "vending_key" not in lines[0] and len(lines[0]["decoder_key"]) == 16
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with demo.service.db.read() as conn:
        assert conn.scalar(select(audit_log.c.action)
                           .where(audit_log.c.action == "meter.export_sim")) is not None
    # show and resend through the CLI
    pid = str(uuid.uuid4())
    assert demo.buy(demo.meters[0], "10", pid=pid).status_code == 201
    res = runner.invoke(cli, ["deliver", "show", pid, "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["delivery"][0]["channel"] == "ami"
    res = runner.invoke(cli, ["deliver", "resend", pid, "--channel", "sms", "--to",
                              "+27825550123", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["to"] == "+27825550123"
    res = runner.invoke(cli, ["deliver", "resend", pid, "--channel", "sms", "--to", "555",
                              "--db", db, "--json"])
    assert isinstance(res.exception, InputError) and res.exception.field == "deliver.to"


def test_config_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "delivery.toml"
    path.write_text('[retry]\nbase = 1\nmax_attempts = 3\n[sms]\nurl = "https://gw.example/s"\n'
                    'format = "form"\n[email]\nport = 587\n')
    cfg = DeliveryConfig.load(str(path), env={
        "STS_AMI_BROKER": "mqtt://u:p%40ss@broker.example:1884",
        "STS_SMTP_URL": "smtp://tok:secret@mail.example:587?starttls=1&from=t@u.example"})
    assert cfg.retry.base == 1.0 and cfg.retry.max_attempts == 3
    assert cfg.sms.format == "form" and cfg.sms.url == "https://gw.example/s"
    end = cfg.ami.endpoint()
    assert (end.host, end.port, end.tls, end.username, end.password) == \
        ("broker.example", 1884, False, "u", "p@ss")
    assert (cfg.email.host, cfg.email.port, cfg.email.starttls, cfg.email.username,
            cfg.email.sender) == ("mail.example", 587, True, "tok", "t@u.example")
    assert "secret" not in repr(cfg)
    path.write_text("[sms]\nretries = 3\n")
    with pytest.raises(ConfigError) as err:
        DeliveryConfig.load(str(path), env={})
    assert err.value.field == "sms.retries"
    path.write_text("[retry]\nbase = \"soon\"\n")
    with pytest.raises(ConfigError) as err:
        DeliveryConfig.load(str(path), env={})
    assert err.value.field == "retry.base"
    with pytest.raises(ConfigError):
        DeliveryConfig.load(None, env={"STS_AMI_BROKER": "http://x"})


def test_backoff_grows_with_jitter_and_caps() -> None:
    import random

    from sts.delivery.config import RetryPolicy

    p = RetryPolicy(base=1, factor=2, max_delay=10, jitter=0.5)
    rng = random.Random(7)
    delays = [p.delay(n, rng) for n in range(1, 8)]
    for n, d in enumerate(delays, 1):
        full = min(10, 2 ** (n - 1))
        assert full * 0.5 <= d <= full
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not fixed steps
