"""Documented limits: the request body (413 before parsing) and each string field (422)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from sts.server import schemas
from sts.vending.config import DEFAULT_MAX_BODY
from tests.fixtures import Demo
from tests.vending.test_api_errors import assert_error, quiet_log

pytestmark = pytest.mark.usefixtures(quiet_log.__name__)

LIMIT = DEFAULT_MAX_BODY


def padded(size: int) -> bytes:
    """A JSON object of exactly `size` bytes (a trial body with padding in `reference`)."""
    head, tail = b'{"meter": "60072704100000019", "amount": "10", "reference": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_limit_is_64_kib_and_documented() -> None:
    from pathlib import Path

    assert LIMIT == 65536
    doc = (Path(__file__).parents[2] / "docs" / "vending.md").read_text()
    assert "## API limits" in doc and "65536" in doc


def test_body_over_limit_with_content_length(demo: Demo) -> None:
    r = demo.client.post("/v1/trials", content=padded(LIMIT + 1),
                         headers=demo.h("vendor") | {"content-type": "application/json"})
    assert "65536" in assert_error(r, 413, "BODY_TOO_LARGE", "body")["message"]
    # refused before parsing: broken JSON over the limit is 413, not a JSON error
    r = demo.client.post("/v1/trials", content=b"{" * (LIMIT + 1),
                         headers=demo.h("vendor") | {"content-type": "application/json"})
    assert_error(r, 413, "BODY_TOO_LARGE", "body")
    # 12 MB, also on a path that does not exist and without credentials
    r = demo.client.post("/v1/nothing", content=b"x" * 12_000_000)
    assert_error(r, 413, "BODY_TOO_LARGE", "body")


def test_body_at_limit_is_parsed(demo: Demo) -> None:
    r = demo.client.post("/v1/trials", content=padded(LIMIT),
                         headers=demo.h("vendor") | {"content-type": "application/json"})
    # it reaches validation: the reference is too long, not the body
    assert_error(r, 422, "INVALID_INPUT", "reference")


def test_body_over_limit_streamed_without_content_length(demo: Demo) -> None:
    def chunks() -> Iterator[bytes]:
        data = padded(LIMIT + 10)
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]

    r = demo.client.post("/v1/trials", content=chunks(),
                         headers=demo.h("vendor") | {"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "BODY_TOO_LARGE", "body")


def test_body_longer_than_declared(demo: Demo) -> None:
    r = demo.client.post("/v1/trials", content=padded(LIMIT * 3),
                         headers=demo.h("vendor") | {"content-type": "application/json",
                                                     "content-length": "100"})
    assert r.request.headers["content-length"] == "100"
    assert_error(r, 413, "BODY_TOO_LARGE", "body")


def test_limit_configurable(demo: Demo) -> None:
    from fastapi.testclient import TestClient

    from sts.server.app import create_app
    from sts.vending.config import Settings

    small = TestClient(create_app(demo.service, max_body=100), raise_server_exceptions=False)
    r = small.post("/v1/trials", content=padded(101),
                   headers=demo.h("vendor") | {"content-type": "application/json"})
    assert_error(r, 413, "BODY_TOO_LARGE", "body")
    env = Settings(db_url="x.sqlite3", kek_file="k", max_body=1234).env()
    assert env["STS_MAX_BODY"] == "1234"


STRING_FIELDS = [
    ("POST", "/v1/purchases/{id}", "vendor", {"meter": "1", "amount": "10"}, "meter",
     schemas.METER_MAX),
    ("POST", "/v1/purchases/{id}", "vendor", {"meter": "1", "amount": "10"}, "amount",
     schemas.AMOUNT_MAX),
    ("POST", "/v1/purchases/{id}", "vendor", {"meter": "1", "amount": "10"}, "reference",
     schemas.REFERENCE_MAX),
    ("POST", "/v1/purchases/{id}", "vendor", {"meter": "1", "amount": "10"}, "pay_type",
     schemas.PAY_TYPE_MAX),
    ("POST", "/v1/trials", "vendor", {"meter": "1", "amount": "10"}, "meter", schemas.METER_MAX),
    ("POST", "/v1/trials", "vendor", {"meter": "1", "amount": "10"}, "amount",
     schemas.AMOUNT_MAX),
    ("POST", "/v1/purchases/{id}/reversals", "supervisor", {"reason": "x"}, "reason",
     schemas.REASON_MAX),
    ("POST", "/v1/reprints", "vendor", {}, "meter", schemas.METER_MAX),
    ("POST", "/v1/reprints", "vendor", {}, "receipt_no", schemas.RECEIPT_NO_MAX),
    ("POST", "/v1/engineering/{id}", "engineer", {"meter": "1", "type": "test", "reason": "r"},
     "meter", schemas.METER_MAX),
    ("POST", "/v1/engineering/{id}", "engineer", {"meter": "1", "type": "test", "reason": "r"},
     "type", schemas.TYPE_MAX),
    ("POST", "/v1/engineering/{id}", "engineer", {"meter": "1", "type": "test", "reason": "r"},
     "reason", schemas.REASON_MAX),
    ("POST", "/v1/tokens/verify", "vendor", {"meter": "1", "token": "1"}, "meter",
     schemas.METER_MAX),
    ("POST", "/v1/tokens/verify", "vendor", {"meter": "1", "token": "1"}, "token",
     schemas.TOKEN_MAX),
]


@pytest.mark.parametrize(("method", "path", "role", "base", "field", "limit"), STRING_FIELDS)
def test_string_field_limit(demo: Demo, method: str, path: str, role: str,
                            base: dict[str, Any], field: str, limit: int) -> None:
    url = path.replace("{id}", str(uuid.uuid4()))
    body = base | {field: "1" * (limit + 1)}
    r = demo.client.request(method, url, content=json.dumps(body),
                            headers=demo.h(role) | {"content-type": "application/json"})
    code = {"amount": "INVALID_AMOUNT", "meter": "INVALID_METER_NUMBER"}.get(field,
                                                                         "INVALID_INPUT")
    msg = assert_error(r, 422, code, field)["message"]
    if field != "meter":  # the meter number rule says how many digits it wants instead
        assert f"at most {limit} characters" in msg
    at_limit = demo.client.request(method, url, content=json.dumps(base | {field: "1" * limit}),
                                   headers=demo.h(role) | {"content-type": "application/json"})
    assert at_limit.status_code < 500
    assert at_limit.json().get("field") != field or "at most" not in at_limit.json()["message"]


def test_engineering_reason_of_a_megabyte_is_refused(demo: Demo) -> None:
    from tests.fixtures import known_pan

    body = {"meter": known_pan(), "type": "clear_tamper", "reason": "w" * 1_000_000}
    r = demo.client.post(f"/v1/engineering/{uuid.uuid4()}", json=body, headers=demo.h("engineer"))
    assert r.status_code == 413  # the body limit comes first
    body["reason"] = "w" * (schemas.REASON_MAX + 1)
    r = demo.client.post(f"/v1/engineering/{uuid.uuid4()}", json=body, headers=demo.h("engineer"))
    assert_error(r, 422, "INVALID_INPUT", "reason")
    from sqlalchemy import func, select

    from sts.vending.storage.tables import audit_log

    with demo.service.db.read() as conn:
        longest = conn.scalar(select(func.max(func.length(audit_log.c.details))))
    assert longest is None or longest < 2000


@pytest.mark.parametrize(("path", "field", "limit"), [
    ("/v1/purchases/{x}", "purchase_id", schemas.REQUEST_ID_MAX),
    ("/v1/meters/{x}", "meter", schemas.METER_MAX),
    ("/v1/meters/60072704100000019?amount={x}", "amount", schemas.AMOUNT_MAX),
])
def test_path_and_query_limits(demo: Demo, path: str, field: str,
                               limit: int) -> None:
    r = demo.client.get(path.replace("{x}", "1" * (limit + 1)), headers=demo.h("supervisor"))
    code = {"amount": "INVALID_AMOUNT", "meter": "INVALID_METER_NUMBER"}.get(field,
                                                                         "INVALID_INPUT")
    msg = assert_error(r, 422, code, field)["message"]
    assert field == "meter" or f"at most {limit}" in msg
