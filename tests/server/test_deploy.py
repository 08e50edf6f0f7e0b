"""The service files in deploy/ (issue 21): the systemd unit's, the image's and the compose
services' command lines parse with the real click commands, the example configurations load
with the real checks, and the compose file holds together (services, networks, volumes,
secrets, the proxy the servers believe, the upstreams the proxy names)."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import warnings
from pathlib import Path
from typing import Any

import click
import pytest
import yaml  # type: ignore[import-untyped]

from sts.cli.group import cli
from sts.cli.settings_file import load

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def parse(argv: list[str], monkeypatch: pytest.MonkeyPatch,
          config: Path | None = None) -> click.Context:
    """The innermost context click builds for `sts ARGV...` (parsed, not run)."""
    for var in ("STS_CONFIG", "STS_DB_URL", "STS_AMI_BROKER"):
        monkeypatch.delenv(var, raising=False)
    if config is not None:
        monkeypatch.setenv("STS_CONFIG", str(config))
    ctx = cli.make_context("sts", list(argv))
    while isinstance(ctx.command, click.Group) and (rest := remaining(ctx)):
        name, command, args = ctx.command.resolve_command(ctx, rest)
        assert command is not None, f"sts {' '.join(argv)}: no command {rest[0]}"
        ctx = command.make_context(str(name), args, parent=ctx)
    return ctx


def remaining(ctx: click.Context) -> list[str]:
    """What a group left for its subcommand (click 8 keeps the name apart, click 9 will not)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [*ctx.protected_args, *ctx.args]


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(DEPLOY / "systemd" / "sts.service")
    return parser


def test_systemd_unit_runs_real_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    service = unit()["Service"]
    assert service["Environment"] == "STS_CONFIG=/etc/sts/sts.toml"
    for key, command in (("ExecStartPre", "migrate"), ("ExecStart", "serve")):
        argv = shlex.split(service[key])
        assert argv[0] == "/opt/sts/bin/sts"
        # the unit's --config names /etc/sts/sts.toml: the repository's example stands in
        argv = [str(DEPLOY / "sts.toml") if a == "/etc/sts/sts.toml" else a for a in argv[1:]]
        ctx = parse(argv, monkeypatch, config=DEPLOY / "sts.toml")
        assert ctx.command.name == command
    serve = parse(["serve", "--config", str(DEPLOY / "sts.toml")], monkeypatch).params
    assert serve["tls_cert"] and serve["tls_client_ca"] and serve["port"] == 8443
    assert service["KillSignal"] == "SIGTERM" and service["User"] == "sts"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_example_configurations_load() -> None:
    for path in (DEPLOY / "sts.toml", DEPLOY / "compose" / "sts.toml"):
        cfg = load(str(path))
        assert "db_url" in cfg.shared and "serve" in cfg.default_map


def instruction(text: str, name: str) -> list[str]:
    found = re.findall(rf"^{name} (\[.*\])$", text, re.MULTILINE)
    assert len(found) == 1, name
    return list(json.loads(found[0]))


def test_containerfile(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert instruction(text, "ENTRYPOINT") == ["sts"]
    ctx = parse(instruction(text, "CMD"), monkeypatch)
    assert ctx.command.name == "serve" and ctx.params["host"] == "0.0.0.0"
    root = DEPLOY.parent
    for line in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for source in line.split():
            assert (root / source).exists(), f"Containerfile copies {source}: not in the repo"
    assert "USER sts" in text and "/healthz" in text


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def test_compose_structure(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = compose()
    services: dict[str, Any] = doc["services"]
    images = {name: s.get("image", "") for name, s in services.items()}
    assert "postgres" in images["db"] and "mosquitto" in images["broker"]
    assert "caddy" in images["proxy"]
    proxy_ip = services["proxy"]["networks"]["backend"]["ipv4_address"]
    servers = [n for n, s in services.items() if s.get("command", [""])[0] == "serve"]
    assert len(servers) >= 2
    for name, s in services.items():
        for dep in s.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
        nets = s.get("networks", [])
        for net in nets:
            assert net in doc["networks"], f"{name}: unknown network {net}"
        for secret in s.get("secrets", []):
            assert secret in doc["secrets"], f"{name}: unknown secret {secret}"
        for volume in s.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if "/secrets/" not in source + "/":  # the operator's, never in the repo
                    assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in doc["volumes"], f"{name}: unknown volume {source}"
        if s.get("image") == "localhost/sts:latest":
            mounts = {v.split(":")[1]: v.split(":")[0] for v in s["volumes"]}
            config = DEPLOY / mounts[s["environment"]["STS_CONFIG"]]
            ctx = parse(s["command"], monkeypatch, config=config)
            if name in servers:  # the servers believe X-Forwarded-* from the proxy only
                assert ctx.params["forwarded_allow_ips"] == proxy_ip
    assert services["migrate"]["command"] == ["admin", "migrate"]
    for name in servers:
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
    assert services["proxy"]["ports"] == ["443:443"]
    caddy = (DEPLOY / "caddy" / "Caddyfile").read_text()
    upstreams = re.search(r"reverse_proxy ([^{]+)\{", caddy)
    assert upstreams is not None
    assert {u.split(":")[0] for u in upstreams.group(1).split()} == set(servers)
    assert "health_uri /readyz" in caddy and "header_up X-Client-Cert" in caddy
