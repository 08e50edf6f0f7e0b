"""`/healthz` and `/readyz`: the reasons in JSON, 503 while a check fails (schema behind this
code, a security module that cannot use its keys, an unreachable broker), ready again when it
passes; a schema newer than this server (a rolling upgrade) is still ready."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.fixtures import Demo
from tests.support.server import free_port


def checks(demo: Demo, status: int) -> dict[str, Any]:
    r = demo.client.get("/readyz")
    assert r.status_code == status, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["status"] == ("ready" if status == 200 else "not ready")
    return dict(body["checks"])


def test_ready_and_its_reasons(demo: Demo) -> None:
    live = demo.client.get("/healthz")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ok = checks(demo, 200)
    assert set(ok) == {"database", "migrations", "security_module"}
    assert all(c["ok"] for c in ok.values())
    assert "checks" in ok["security_module"]["detail"]  # a key's check value was computed


def test_schema_behind_and_ahead(demo: Demo) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    from tests.support.migrations import alembic_config

    db = demo.service.db
    with db.read() as conn:
        scripts = ScriptDirectory.from_config(alembic_config(conn))
    head = str(scripts.get_current_head())
    previous = str(scripts.get_revision(head).down_revision)
    with db.begin() as conn:
        command.downgrade(alembic_config(conn), previous)
    behind = checks(demo, 503)["migrations"]
    assert not behind["ok"] and "sts admin migrate" in behind["detail"]
    with db.begin() as conn:  # a newer server has migrated (additively): still ready
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_newer'"))
    assert "newer" in checks(demo, 200)["migrations"]["detail"]
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": previous})
        command.upgrade(alembic_config(conn), "head")
    assert checks(demo, 200)["migrations"]["detail"] == f"at {head}"


def test_security_module_that_cannot_use_its_keys(demo: Demo, settings: Any,
                                                  tmp_path: Path) -> None:
    from dataclasses import replace

    from sts.server.app import create_app
    from sts.vending.config import open_service
    from sts.vending.keys.software import create_kek_file

    wrong = tmp_path / "wrong.kek"
    create_kek_file(wrong)
    svc = open_service(replace(settings, kek_file=str(wrong)))
    try:
        r = TestClient(create_app(svc)).get("/readyz")
        assert r.status_code == 503
        sm = r.json()["checks"]["security_module"]
        assert not sm["ok"] and r.json()["checks"]["database"]["ok"]
        assert wrong.read_text().strip() not in r.text  # never the KEK
    finally:
        svc.db.dispose()


def test_broker_where_configured(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STS_AMI_BROKER", f"mqtt://127.0.0.1:{free_port()}")
    down = checks(demo, 503)["broker"]
    assert not down["ok"] and "ConnectionRefused" in down["detail"]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv("STS_AMI_BROKER", f"mqtt://user:secret@127.0.0.1:{port}")
        r = demo.client.get("/readyz")
        assert r.status_code == 200 and r.json()["checks"]["broker"]["ok"]
        assert "secret" not in r.text
