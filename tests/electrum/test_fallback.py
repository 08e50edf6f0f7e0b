"""Errors the framework answers before an operation runs, under /prepaidutility/v3: an
unknown path or method, an oversized or non-UTF-8 body.  They come back as the interface's
ErrorDetail (the app's `error_renderers`), while /v1 keeps its own error shape."""

from __future__ import annotations

from typing import Any

from sts.electrum.models import ErrorDetail
from tests.fixtures import known_pan
from tests.support.electrum import BASE, Switch, new_id


def detail(r: Any) -> dict[str, Any]:
    body: dict[str, Any] = r.json()
    ErrorDetail.model_validate(body)  # valid against the interface's model
    assert len(body["errorMessage"]) <= 20
    return body


def test_unknown_paths_and_methods_answer_error_detail(switch: Switch) -> None:
    client = switch.demo.client
    r = client.get(f"{BASE}/noSuchThing/abc", headers=switch.headers)
    assert r.status_code == 404
    body = detail(r)
    assert body["errorType"] == "FUNCTION_NOT_SUPPORTED"
    assert body["detailMessage"]["code"] == "NOT_FOUND"
    pid = new_id()
    r = client.get(f"{BASE}/tokenPurchases/{pid}", headers=switch.headers)  # only POST
    assert r.status_code == 405
    body = detail(r)
    assert (body["errorType"], body["requestType"], body["id"]) == (
        "FUNCTION_NOT_SUPPORTED", "TOKEN_PURCHASE_REQUEST", pid)
    aid = new_id()
    r = client.delete(f"{BASE}/tokenPurchases/{pid}/confirmations/{aid}")
    assert r.status_code == 405
    body = detail(r)
    assert (body["requestType"], body["id"], body.get("originalId")) == (
        "CONFIRMATION_ADVICE", aid, pid)
    # an id longer than any id is not echoed in full
    r = client.get(f"{BASE}/meterLookups/{'x' * 500}")
    assert r.status_code == 405 and len(detail(r)["id"]) == 64
    # /v1 keeps its own shape
    r = client.get("/v1/noSuchThing")
    assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"


def test_bodies_refused_before_parsing_answer_error_detail(switch: Switch) -> None:
    client = switch.demo.client
    pid = new_id()
    path = f"{BASE}/tokenPurchases/{pid}"
    big = switch.purchase_request(known_pan(), 1000, pid=pid, basketRef="x" * 70_000)
    r = client.post(path, json=big, headers=switch.headers)
    assert r.status_code == 413
    body = detail(r)
    assert (body["errorType"], body["detailMessage"]["code"], body["id"]) == (
        "FORMAT_ERROR", "BODY_TOO_LARGE", pid)
    r = client.post(path, content=b'{"id": "\xff"}',
                    headers=switch.headers | {"Content-Type": "application/json"})
    assert r.status_code == 400
    assert detail(r)["errorType"] == "FORMAT_ERROR"
    # nothing was stored: the id is still free
    ok = switch.post(f"/tokenPurchases/{pid}", switch.purchase_request(known_pan(), 1000,
                                                                       pid=pid))
    assert ok.status_code == 201, ok.text


def test_meter_number_rule_and_purchase_state(switch: Switch) -> None:
    r = switch.buy("12345678901")  # wrong check digit: the codec's one meter number rule
    body = detail(r)
    assert body["errorType"] == "UNKNOWN_METER_ID"
    assert body["detailMessage"]["code"] == "INVALID_METER_NUMBER"
    assert body["detailMessage"]["field"] == "meter.meterId"
    sale = switch.buy(known_pan(), 5000).json()
    v1 = switch.demo.client.get(f"/v1/purchases/{sale['id']}",
                                headers=switch.demo.h("vendor"))
    assert v1.json()["state"] == "issued" and "advice" not in v1.json()


def test_trailing_slash_and_content_type(switch: Switch) -> None:
    """A trailing slash answers ErrorDetail (not an empty 307); a body without a JSON
    Content-Type answers FORMAT_ERROR naming the content type."""
    import json

    body = switch.purchase_request(known_pan(), 1000)
    pid = body["id"]
    c = switch.demo.client
    r = c.post(f"{BASE}/tokenPurchases/{pid}/", json=body, headers=switch.headers,
               follow_redirects=False)
    assert r.status_code == 404, (r.status_code, r.headers.get("location"))
    assert r.json()["errorType"] == "FUNCTION_NOT_SUPPORTED"
    for ct, named in ((None, "no Content-Type"), ("text/plain", "'text/plain'")):
        headers = dict(switch.headers) | ({"content-type": ct} if ct else {})
        r = c.post(f"{BASE}/tokenPurchases/{pid}", content=json.dumps(body), headers=headers)
        assert r.status_code == 400 and r.json()["errorType"] == "FORMAT_ERROR", r.text
        assert named in r.json()["detailMessage"]["message"], r.text
    # the same request as JSON still sells
    assert switch.buy(known_pan(), 1000, pid=pid).status_code == 201
