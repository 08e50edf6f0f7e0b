"""One configuration file for `sts serve`, `sts deliver` and `sts campaign` (issue 21): values
from the file, the environment and the command line, in that order of precedence, resolved by
the real click commands; an unknown key or a bad value names the file and the key; `sts admin
config show` prints what is in effect with secrets masked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from sts.cli.context import shared_values
from sts.cli.deliver import deliver
from sts.cli.vending import admin, campaign, serve
from sts.errors import ConfigError

FILE = """
db = "postgresql://sts:db-secret@db.example/sts"
kek_file = "/etc/sts/kek"

[serve]
host = "10.0.0.1"
port = 9000
workers = 2
tls-cert = "/etc/sts/tls/server.pem"
forwarded_allow_ips = "10.0.0.9"

[deliver.run]
ami_broker = "mqtt://dispatcher:broker-secret@broker:1883"
ami-client-id = "sts-deliver-a"

[campaign.run]
workers = 4
chunk = 500
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("STS_CONFIG", "STS_DB_URL", "STS_KEK_FILE", "STS_AMI_BROKER"):
        monkeypatch.delenv(var, raising=False)
    path = tmp_path / "sts.toml"
    path.write_text(FILE)
    return path


def resolve(group: click.Group, sub: str, *args: str) -> click.Context:
    """The subcommand's context as click builds it (parsed, not run)."""
    ctx = group.make_context(group.name or "", [sub])
    command = group.get_command(ctx, sub)
    assert command is not None
    return command.make_context(sub, list(args), parent=ctx)


def test_file_then_environment_then_command_line(config_file: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STS_SERVE_PORT", "9100")
    monkeypatch.setenv("STS_KEK_FILE", "/run/secrets/kek")
    ctx = serve.make_context("serve", ["--config", str(config_file), "--workers", "3"])
    p = ctx.params
    assert (p["host"], p["port"], p["workers"]) == ("10.0.0.1", 9100, 3)  # file, env, line
    assert (p["tls_cert"], p["forwarded_allow_ips"]) == ("/etc/sts/tls/server.pem", "10.0.0.9")
    assert p["log_level"] == "warning"  # nobody set it: the default
    shared = shared_values(ctx)
    assert shared["db_url"].startswith("postgresql://") and shared["kek_file"] == "/run/secrets/kek"
    ctx = serve.make_context("serve", ["--config", str(config_file), "--db", "x.sqlite3"])
    assert shared_values(ctx)["db_url"] == "x.sqlite3"


def test_file_from_sts_config_reaches_subcommands(config_file: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STS_CONFIG", str(config_file))
    run = resolve(deliver, "run")
    assert run.params["ami_client_id"] == "sts-deliver-a"
    assert run.params["ami_broker"].endswith("@broker:1883")
    monkeypatch.setenv("STS_AMI_BROKER", "mqtt://other:1883")  # the option's own variable
    assert resolve(deliver, "run").params["ami_broker"] == "mqtt://other:1883"
    monkeypatch.setenv("STS_CAMPAIGN_RUN_CHUNK", "700")  # every option has one (STS_<CMD>_...)
    camp = resolve(campaign, "run", "tid-rollover")
    assert (camp.params["workers"], camp.params["chunk"]) == (4, 700)
    assert shared_values(camp)["kek_file"] == "/etc/sts/kek"


@pytest.mark.parametrize(("text", "key", "says"), [
    ("[serve]\nhots = '0.0.0.0'\n", "serve.hots", "unknown key"),
    ("[deliver.runn]\nami_broker = 'x'\n", "deliver.runn", "unknown key"),
    ("[serve]\nport = 'eighty'\n", "serve.port", "not a valid integer"),
    ("[campaign.run]\nworkers = 0\n", "campaign.run.workers", "range"),
    ("dbx = 'x'\n", "dbx", "unknown key"),
    ("serve = 1\n", "serve", "must be a table"),
    ("[serve\n", "config", "not valid TOML"),
])
def test_bad_file_names_the_file_and_key(tmp_path: Path, text: str, key: str,
                                         says: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        serve.make_context("serve", ["--config", str(path)])
    assert err.value.field == key and str(path) in err.value.message
    assert says in err.value.message


def test_config_show_masks_secrets(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STS_SERVE_LOG_LEVEL", "info")
    result = CliRunner().invoke(admin, ["config", "show", "--config", str(config_file),
                                        "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "db-secret" not in result.output and "broker-secret" not in result.output
    shown: dict[str, Any] = json.loads(result.output)
    assert shown["config_file"] == str(config_file)
    opts = shown["options"]
    assert opts["db"] == {"value": "postgresql://sts:***@db.example/sts", "source": "file"}
    assert opts["serve.port"] == {"value": 9000, "source": "file"}
    assert opts["serve.log_level"] == {"value": "info", "source": "env STS_SERVE_LOG_LEVEL"}
    assert opts["serve.lookup_limit"] == {"value": 600, "source": "default"}
    assert opts["deliver.run.ami_broker"]["value"] == "mqtt://dispatcher:***@broker:1883"
    text = CliRunner().invoke(admin, ["config", "show", "--config", str(config_file)]).output
    assert "serve.port = 9000" in text and "broker-secret" not in text
