"""One error shape on /v1, whatever is wrong with the request, and never a 5xx or a traceback."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from tests.fixtures import Demo

SHAPE_KEYS = {"code", "message", "field", "reason"}


def assert_error(resp: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """`resp` is an error in the one shape: {"code", "message", "field"?}."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body, dict) and set(body) <= SHAPE_KEYS, body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    assert "Traceback" not in resp.text and "detail" not in body
    if field is not None:
        assert body.get("field") == field, body
    return body


@pytest.fixture(autouse=True)
def quiet_log(caplog: pytest.LogCaptureFixture) -> Any:
    """After the test: the server logged no error and no traceback for a client's mistakes."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    for rec in caplog.records:
        assert rec.exc_info is None, rec.getMessage()
        assert rec.levelno < logging.ERROR, rec.getMessage()
        assert "Traceback" not in caplog.text


def post_raw(demo: Demo, path: str, content: bytes, **headers: str) -> Any:
    h = demo.h("vendor") | {"content-type": "application/json"} | headers
    return demo.client.post(path, content=content, headers=h)


def test_body_not_utf8(demo: Demo) -> None:
    body = b'{"meter": "' + b"\xff\xfe\xfa" + b'", "amount": "10"}'
    r = post_raw(demo, f"/v1/purchases/{uuid.uuid4()}", body)
    msg = assert_error(r, 422, "INVALID_INPUT", "body")["message"]
    assert "UTF-8" in msg
    latin1 = '{"meter": "Müller", "amount": "10"}'.encode("latin-1")
    assert_error(post_raw(demo, "/v1/trials", latin1), 422, "INVALID_INPUT", "body")
    # UTF-16 and UTF-32 JSON (which Python's parser would accept) are refused: JSON is UTF-8
    text = '{"meter": "600727041000000193", "amount": "10"}'
    for encoding in ("utf-16", "utf-32", "utf-16-be"):
        r = post_raw(demo, "/v1/trials", text.encode(encoding))
        assert "UTF-8" in assert_error(r, 422, "INVALID_INPUT", "body")["message"]
    r = post_raw(demo, "/v1/trials", text.encode(), **{"content-type": "application/json; "
                                                        "charset=utf-8"})
    assert r.status_code == 200


DEEP = [
    lambda n: b"[" * n + b"]" * n,
    lambda n: b'{"meter": ' + b"[" * n + b"]" * n + b', "amount": "10"}',
    lambda n: b'{"a":' * (n // 5) + b"1" + b"}" * (n // 5),
]


@pytest.mark.parametrize("make", DEEP)
def test_body_nested_too_deep(demo: Demo, make: Any) -> None:
    r = post_raw(demo, "/v1/tokens/verify", make(30_000))  # within the default body limit
    assert "nested too deeply" in assert_error(r, 422, "INVALID_INPUT", "body")["message"]
    # the case: 100,000 deep, with the body limit raised so the parser sees it
    from fastapi.testclient import TestClient

    from sts.server.app import create_app

    big = TestClient(create_app(demo.service, max_body=1 << 20), raise_server_exceptions=False)
    r = big.post("/v1/trials", content=make(100_000),
                 headers=demo.h("vendor") | {"content-type": "application/json"})
    assert "nested too deeply" in assert_error(r, 422, "INVALID_INPUT", "body")["message"]


def test_body_not_json(demo: Demo) -> None:
    for raw in (b"{not json", b"", b"   ", b'{"meter": "1",}', b"NaN]"):
        assert_error(post_raw(demo, "/v1/trials", raw), 422, "INVALID_INPUT", "body")
    for raw in (b"[]", b'"text"', b"42", b"null", b"true"):
        r = post_raw(demo, "/v1/trials", raw)
        assert "JSON object" in assert_error(r, 422, "INVALID_INPUT", "body")["message"]
    # a number too long for Python's int parser
    r = post_raw(demo, "/v1/trials", b'{"meter": "1", "amount": ' + b"9" * 5000 + b"}")
    assert_error(r, 422, "INVALID_INPUT", "body")


def test_body_without_json_content_type(demo: Demo) -> None:
    raw = b'{"meter": "1", "amount": "10"}'
    for ctype in ("text/plain", "application/x-www-form-urlencoded"):
        r = post_raw(demo, "/v1/trials", raw, **{"content-type": ctype})
        assert "Content-Type: application/json" in assert_error(r, 422, "INVALID_INPUT",
                                                                "body")["message"]


def test_unknown_route_and_method(demo: Demo) -> None:
    c = demo.client
    assert_error(c.get("/v1/nothing", headers=demo.h("vendor")), 404, "NOT_FOUND")
    assert_error(c.get("/nowhere"), 404, "NOT_FOUND")
    assert_error(c.post("/v1/meters/600727000000000009", json={}), 405, "METHOD_NOT_ALLOWED")
    r = c.delete(f"/v1/purchases/{uuid.uuid4()}", headers=demo.h("vendor"))
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["allow"]
    assert_error(c.put("/v1/trials", json={}), 405, "METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(("path", "body", "field", "words"), [
    ("/v1/trials", {"meter": "x", "amount": "1", "colour": "red"}, "colour", "not a field"),
    ("/v1/trials", {"meter": "x"}, "amount", "required"),
    ("/v1/reprints", {"receipt_no": 1}, "receipt_no", "JSON string"),
    ("/v1/purchases/abcdefgh-1/reversals", {"reason": ["lost"]}, "reason", "JSON string"),
    ("/v1/engineering/abcdefgh-1", {"meter": "x", "type": "test", "reason": "abc",
                                    "watts": "5000"}, "watts", "JSON integer"),
    ("/v1/engineering/abcdefgh-1", {"meter": "x", "type": "test", "reason": "abc",
                                    "watts": 5000.0}, "watts", "JSON integer"),
    ("/v1/engineering/abcdefgh-1", {"meter": "x", "type": "test", "reason": "abc",
                                    "to_krn": True}, "to_krn", "JSON integer"),
    ("/v1/engineering/abcdefgh-1", {"meter": "x", "type": "key_change", "reason": "abc",
                                    "ro": "yes"}, "ro", "true or false"),
    ("/v1/engineering/abcdefgh-1", {"meter": "x", "type": "key_change", "reason": 7},
     "reason", "JSON string"),
    ("/v1/engineering/abcdefgh-1", {"meter": "x", "type": "key_change", "reason": "abc",
                                    "ro": 1}, "ro", "true or false"),
    ("/v1/tokens/verify", {"meter": "x", "token": 12345678901234567890}, "token", "JSON string"),
])
def test_wrong_types_name_the_field(demo: Demo, path: str, body: dict[str, Any], field: str,
                                    words: str) -> None:
    role = {"engineering": "engineer", "reversals": "supervisor"}
    who = next((r for k, r in role.items() if k in path), "vendor")
    r = demo.client.post(path, json=body, headers=demo.h(who))
    assert words in assert_error(r, 422, "INVALID_INPUT", field)["message"]


@pytest.mark.parametrize(("field", "value", "code", "words"), [
    ("amount", 10, "INVALID_AMOUNT", "a number"),
    ("amount", 10.05, "INVALID_AMOUNT", "plain decimal string"),
    ("amount", True, "INVALID_AMOUNT", "plain decimal string"),
    ("amount", None, "INVALID_AMOUNT", "plain decimal string"),
    ("amount", ["10"], "INVALID_AMOUNT", "plain decimal string"),
    ("amount", {"v": "10"}, "INVALID_AMOUNT", "plain decimal string"),
    ("amount", "9" * 5000, "INVALID_AMOUNT", "at most 40 characters"),
    ("meter", 60072704100000019, "INVALID_METER_NUMBER", "meter"),
    ("meter", None, "INVALID_METER_NUMBER", "meter"),
    ("meter", "6" * 100, "INVALID_METER_NUMBER", "meter"),
])
def test_fields_with_one_rule_answer_by_it(demo: Demo, field: str, value: Any, code: str,
                                           words: str) -> None:
    """A wrong type or length of `amount` or `meter` gets that field's own code and rule."""
    body = {"meter": demo.meters[0], "amount": "10"} | {field: value}
    for path in ("/v1/trials", f"/v1/purchases/{uuid.uuid4()}"):
        r = demo.client.post(path, json=body, headers=demo.h("vendor"))
        assert words in assert_error(r, 422, code, field)["message"]


def test_auth_errors_in_the_shape(demo: Demo) -> None:
    c = demo.client
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer nope"}):
        assert_error(c.get(f"/v1/meters/{demo.meters[0]}", headers=headers), 401,
                     "NOT_AUTHENTICATED", "authorization")
        assert_error(c.get("/v1/audit/verify", headers=headers), 401,
                     "NOT_AUTHENTICATED", "authorization")


class Echo(BaseModel):
    n: int


router = APIRouter(prefix="/other")


@router.post("/echo")
def echo(body: Echo) -> dict[str, int]:
    return {"n": body.n}


def test_a_face_with_its_own_error_model(demo: Demo) -> None:
    """Another face on the same app (e.g. Electrum) renders every error under its prefix."""
    from fastapi.responses import JSONResponse
    from fastapi.testclient import TestClient

    from sts.server.app import create_app

    app = create_app(demo.service, max_body=1000)
    app.include_router(router)
    app.state.error_renderers["/other"] = lambda _req, status, body: JSONResponse(
        {"errorDetail": {"errorCode": body["code"], "errorMessage": body["message"]}},
        status_code=status)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/other/echo", json={"n": 1}).json() == {"n": 1}
    for resp, status in ((client.post("/other/echo", json={"n": "x"}), 422),
                         (client.post("/other/echo", content=b"x" * 2000), 413),
                         (client.get("/other/nothing"), 404),
                         (client.get("/other/echo"), 405)):
        assert resp.status_code == status and set(resp.json()) == {"errorDetail"}, resp.text
    assert_error(client.post("/v1/trials", content=b"x" * 2000), 413, "BODY_TOO_LARGE")


def test_unknown_query_parameter_is_refused_naming_it(demo: Demo) -> None:
    """Query strings are as strict as bodies: a misspelt `amuont` is not "no amount"."""
    meter = demo.meters[0]
    assert demo.client.get(f"/v1/meters/{meter}?amount=10", headers=demo.h("vendor")).status_code \
        == 200
    r = demo.client.get(f"/v1/meters/{meter}?amuont=10", headers=demo.h("vendor"))
    assert "amount" in assert_error(r, 422, "INVALID_INPUT", "amuont")["message"]
    r = demo.client.get("/v1/deliveries?after_id=0&=null", headers=demo.h("admin"))
    assert_error(r, 422, "INVALID_INPUT")
