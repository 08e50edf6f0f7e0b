"""JSON logs: one line per request with its id, face, caller, purchase, outcome and duration;
the id answered in X-Request-ID (errors too) and stored beside the audit entries the request
wrote; and no secret in any line (API keys, a vending key, the KEK, passwords, session cookies,
the tokens sold), scanned over sales, key operations and sign-ins on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sts.server.logs import JsonFormatter


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record of every logger at INFO and above, as `--log-format json` writes it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root, access = logging.getLogger(), logging.getLogger("sts.access")
    levels = (root.level, access.level)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    access.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        access.setLevel(levels[1])


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def _sign_in(client: Any, username: str, password: str) -> Any:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    return client.post("/login", data={"csrf": csrf[1], "username": username,
                                       "password": password}, follow_redirects=False)


def test_one_json_line_per_request_and_no_secret_in_any(demo: Any, captured: io.StringIO,
                                                        kek_file: str) -> None:
    from sts.vending.registry.operators import demo_passwords
    from sts.vending.storage.tables import audit_log

    secrets_used: list[str] = [*demo.keys.values(), Path(kek_file).read_text().strip()]
    raw = bytes(range(20))  # an imported vending key (key operation)
    secrets_used += [raw.hex(), raw.hex().upper()]
    demo.registry.add_sgc("999930", utility="Demo Utility")
    demo.registry.add_key("999930", 1, raw=raw)

    # sales, one with the client's request id, and a reversal audited under its request id
    sold = [demo.buy(amount="20") for _ in range(3)]
    given = demo.client.post(f"/v1/purchases/{uuid.uuid4()}", json={
        "meter": demo.meters[0], "amount": "15"}, headers={
        **demo.h("vendor"), "X-Request-ID": "client-request-0001"})
    sold.append(given)
    assert [a.status_code for a in sold] == [201] * 4
    assert given.headers["x-request-id"] == "client-request-0001"
    secrets_used += [t["token"] for a in sold for t in a.json()["tokens"]]
    pid = sold[0].json()["purchase_id"]
    reversal = demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "not sent"},
                                headers={**demo.h("supervisor"),
                                         "X-Request-ID": "reversal-request-01"})
    assert reversal.status_code == 201, reversal.text

    # errors carry their request id; a malformed X-Request-ID is replaced, not echoed
    bogus = "stsk_" + uuid.uuid4().hex
    secrets_used.append(bogus)
    refused = demo.client.get(f"/v1/meters/{demo.meters[0]}",
                              headers={"Authorization": f"Bearer {bogus}",
                                       "X-Request-ID": "bad id\twith tab"})
    assert refused.status_code == 401
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-request-id"])

    # sign-ins: a wrong password and a right one (its session cookie is a secret too)
    passwords = demo_passwords(demo.registry)
    wrong = "Wrong-" + uuid.uuid4().hex
    secrets_used += [wrong, *(p["password"] for p in passwords.values())]
    assert _sign_in(demo.client, "demo-supervisor", wrong).status_code in (200, 401, 403)
    signed = _sign_in(demo.client, "demo-supervisor", passwords["supervisor"]["password"])
    assert signed.status_code in (302, 303), signed.text
    secrets_used += [v for v in demo.client.cookies.values() if len(v) >= 16]

    text = captured.getvalue()
    for secret in secrets_used:
        assert secret and secret not in text, "a secret reached the log"

    lines = _lines(captured)
    requests = [x for x in lines if x["logger"] == "sts.access"]
    assert all(re.fullmatch(r"[A-Za-z0-9._:-]{8,64}", x["request_id"]) for x in requests)
    sales = [x for x in requests if x["outcome"] == "sold"]
    assert len(sales) == 4
    for x in sales:
        assert x["face"] == "v1" and x["status"] == 201 and x["duration_ms"] >= 0
        assert x["caller"].startswith("key:") and x["caller"].endswith(":vendor:demo vendor")
        assert x["purchase_id"] in x["path"]
    assert {x["request_id"] for x in sales} >= {"client-request-0001"}
    failed = [x for x in requests if x["status"] == 401]
    assert failed and failed[0]["error_code"] == "NOT_AUTHENTICATED"
    assert failed[0]["request_id"] == refused.headers["x-request-id"]
    assert any(x["face"] == "web" and x["path"] == "/login" for x in requests)

    with demo.service.db.read() as conn:
        rows = conn.execute(sa.select(audit_log.c.action, audit_log.c.request_id)
                            .where(audit_log.c.action == "reversal")).all()
    assert [r.request_id for r in rows] == ["reversal-request-01"]
    assert demo.service.verify_audit(_auditor(demo))["ok"]


def _auditor(demo: Any) -> Any:
    from sts.vending.access.api_keys import authenticate

    with demo.service.db.read() as conn:
        return authenticate(conn, demo.keys["auditor"])


def test_an_unexpected_failure_is_answered_with_its_request_id(demo: Any,
                                                               captured: io.StringIO) -> None:
    from fastapi.testclient import TestClient

    from sts.server.app import create_app

    app = create_app(demo.service)

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    client = TestClient(app, raise_server_exceptions=False)
    answer = client.get("/v1/boom", headers={"X-Request-ID": "boom-request-0001"})
    assert answer.status_code == 500 and answer.json()["code"] == "SYSTEM_ERROR"
    assert answer.headers["x-request-id"] == "boom-request-0001"
    line = [x for x in _lines(captured) if x["logger"] == "sts.access"][-1]
    assert line["request_id"] == "boom-request-0001" and line["status"] == 500
    failure = [x for x in _lines(captured) if x.get("exception") == "RuntimeError"]
    assert failure and failure[0]["request_id"] == "boom-request-0001"


def test_serve_hands_uvicorn_the_json_logging() -> None:
    from sts.server.logs import log_config

    assert log_config("text", "info") is None  # uvicorn's own
    config = log_config("json", "info")
    assert config is not None
    assert config["formatters"]["json"]["()"] == "sts.server.logs.JsonFormatter"
    assert config["loggers"]["sts.access"]["level"] == "INFO"  # one line per request
    assert config["loggers"]["uvicorn.access"]["handlers"] == []  # replaced by ours
    record = logging.LogRecord("sts.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hello you" and line["level"] == "warning"


def test_serve_log_format_option(tmp_path: Path, kek_file: str, monkeypatch: Any) -> None:
    """`sts serve --log-format json` hands uvicorn the JSON logging (and no access log of its
    own); text keeps uvicorn's; the multiprocess metrics directory is made and removed; a
    scrape token file others may read stops it."""
    import os

    import uvicorn
    from click.testing import CliRunner

    from sts.cli.vending import serve

    seen: list[dict[str, Any]] = []

    def run(_app: str, **kw: Any) -> None:
        kw["metrics_dir"] = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        assert kw["metrics_dir"] and Path(kw["metrics_dir"]).is_dir()
        seen.append(kw)

    monkeypatch.setattr(uvicorn, "run", run)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("STS_LOG_FORMAT", raising=False)
    base = ["--db", str(tmp_path / "s.sqlite3"), "--kek-file", kek_file, "--no-deliver"]
    for extra in ([], ["--log-format", "json"]):
        out = CliRunner().invoke(serve, base + extra, catch_exceptions=False)
        assert out.exit_code == 0, out.output
        assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ  # unset again when serve ends
    assert "log_config" not in seen[0]
    assert seen[1]["access_log"] is False
    assert seen[1]["log_config"]["formatters"]["json"]["()"] == "sts.server.logs.JsonFormatter"
    assert not Path(seen[0]["metrics_dir"]).exists()  # removed when serve ended
    out = CliRunner().invoke(serve, [*base, "--log-format", "xml"])
    assert out.exit_code != 0 and "xml" in out.output
    token = tmp_path / "scrape-token"
    token.write_text("a-scrape-token-of-some-length\n")
    token.chmod(0o644)  # readable by others: refused before serving
    out = CliRunner().invoke(serve, [*base, "--metrics-token-file", str(token)])
    assert out.exit_code != 0 and "chmod 600" in str(out.exception)
    assert len(seen) == 2
    os.environ.pop("STS_METRICS_TOKEN_FILE", None)  # serve set it in this process
