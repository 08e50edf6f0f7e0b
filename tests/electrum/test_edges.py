"""Issue 17 on the Electrum face: control characters anywhere (body, path, query, the Basic
username) and bodies nested too deeply are FORMAT_ERROR / 401 before authentication and before
any database call but the journal; trials and lookups share the caller's lookup limit; every
answer is `Cache-Control: no-store`.  SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.fixtures import known_pan
from tests.support.electrum import BASE, Switch, drn_of, envelope, new_id


@contextmanager
def authentication_never_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail if the face reaches authentication (its first database call)."""
    from sts.vending.access import credentials

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("authentication ran")

    with monkeypatch.context() as m:
        m.setattr(credentials, "authenticate", refuse)
        yield


def _raw(switch: Switch, path: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return switch.demo.client.post(BASE + path, content=body, headers=(
        headers if headers is not None else switch.headers) | {
        "content-type": "application/json"})


def _format_error(resp: Any, field: str) -> None:
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["errorType"] == "FORMAT_ERROR", body
    assert body["detailMessage"]["field"] == field, body


@pytest.mark.parametrize("value", ["a\x00b", "a\x1bb", "a\ud800b"])
def test_control_characters_in_any_body_string(switch: Switch, value: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pid = new_id()
    meter = {"meterId": drn_of(known_pan())}
    cases = [
        ("/tokenPurchases/" + pid, switch.purchase_request(meter["meterId"], 1000, pid,
                                                           basketRef=value), "basketRef"),
        ("/meterLookups/" + pid, envelope(pid, meter=meter | {"meterId": value}),
         "meter.meterId"),
        ("/faultReports/" + pid, envelope(pid, meter=meter, contactNumber="0821234567",
                                          faultType="MeterDead", faultDescription=value),
         "faultDescription"),
    ]
    for path, body, field in cases:
        with authentication_never_runs(monkeypatch):
            resp = _raw(switch, path, json.dumps(body).encode())
        _format_error(resp, field)
        assert "control characters" in resp.json()["detailMessage"]["message"]


def test_control_characters_in_path_and_query(switch: Switch,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps(envelope("abcdefgh")).encode()
    with authentication_never_runs(monkeypatch):
        _format_error(_raw(switch, "/meterLookups/abcdefgh%00", body), "lookupId")
        _format_error(_raw(switch, "/tokenPurchases/abcdefgh/confirmations/x%07yzabcde", body),
                      "confirmationId")
        _format_error(_raw(switch, "/events/tokenPurchases?purchaseId=abc%00defgh", body),
                      "purchaseId")


def test_a_nul_in_the_basic_username_is_401(switch: Switch,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    token = base64.b64encode(b"switch\x00x:secret").decode()
    with authentication_never_runs(monkeypatch):
        resp = switch.demo.client.post(BASE + f"/meterLookups/{new_id()}", json={},
                                       headers={"Authorization": f"Basic {token}"})
    assert resp.status_code == 401 and resp.json()["errorType"] == "INVALID_MERCHANT"
    from sts.vending import messages

    last = messages.journal_entries(switch.demo.service.db)[-1]
    assert last["http_status"] == 401 and last["username"] == ""


def test_a_body_nested_too_deeply_is_a_format_error(switch: Switch,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    with authentication_never_runs(monkeypatch):
        resp = _raw(switch, f"/tokenPurchases/{new_id()}", deep, headers={})
    _format_error(resp, "body")
    assert "nested too deeply" in resp.json()["detailMessage"]["message"]


def test_trials_and_lookups_are_rate_limited(switch: Switch) -> None:
    switch.demo.service.lookup_limit = 3
    pan = known_pan()

    def trial() -> Any:
        tid = new_id()
        return switch.post(f"/tokenPurchases/{tid}/trial",
                           switch.purchase_request(drn_of(pan), 10000, pid=tid))

    assert trial().status_code == 200
    assert switch.lookup(drn_of(pan)).status_code == 201
    assert trial().status_code == 200
    over = trial()
    assert over.status_code == 400 and over.json()["errorType"] == "LIMIT_EXCEEDED", over.text
    assert "customer" not in over.json()
    look = switch.lookup(drn_of(pan))
    assert look.status_code == 400 and look.json()["errorType"] == "LIMIT_EXCEEDED"


def test_every_answer_is_no_store(switch: Switch) -> None:
    pan = known_pan()
    sale = switch.buy(drn_of(pan))
    assert sale.status_code == 201
    answers = [sale, switch.retry(sale.json()["id"]), switch.lookup(drn_of(pan)),
               switch.post(f"/tokenReprints/{(rid := new_id())}",
                           envelope(rid, meter={"meterId": drn_of(pan)})),
               switch.post("/nowhere", {}), switch.lookup("1234")]
    for resp in answers:
        assert resp.headers.get("cache-control") == "no-store", (resp.status_code, resp.text)
