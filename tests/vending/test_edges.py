"""Issue 17, trust at the edges: text with control characters is a 4xx naming the field on
every face (never a 500 on PostgreSQL), before any database call; customer data is rate-limited
wherever it is returned; answers carrying tokens are never cached; files holding key material
or PINs must be private.  Every database test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sts.errors import ConfigError, InputError
from tests.fixtures import Demo, known_pan

NUL = "\x00"
BAD = ["a\x00b", "a\x07b", "a\x1bb", "a\ud800b"]  # NUL, BEL, ESC, a lone surrogate
ENGINEERING = {"type": "clear_tamper", "reason": "work order 17"}


def _refused(resp: Any, field: str, codes: tuple[str, ...] = ("INVALID_INPUT",)) -> None:
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["code"] in codes and body.get("field") == field, body


@contextmanager
def no_database(demo: Demo) -> Iterator[None]:
    """Fail any database call made inside the block (the edge must refuse first)."""
    db = demo.service.db

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the database was called")

    saved = db.begin, db.read
    db.begin, db.read = refuse, refuse
    try:
        yield
    finally:
        db.begin, db.read = saved


# --- /v1: bodies, paths and query strings --------------------------------------------------


def _bodies(pan: str, value: str) -> list[tuple[str, str, str, dict[str, Any], str]]:
    """(method, path, role, body, the field named) with `value` in one text field."""
    pid = str(uuid.uuid4())
    sale = {"meter": pan, "amount": "100"}
    return [
        ("POST", f"/v1/purchases/{pid}", "vendor", sale | {"reference": value}, "reference"),
        ("POST", f"/v1/purchases/{pid}", "vendor", sale | {"pay_type": value}, "pay_type"),
        ("POST", f"/v1/purchases/{pid}", "vendor",
         sale | {"deliver": [{"channel": "sms", "to": value}]}, "deliver.0.to"),
        ("POST", f"/v1/purchases/{pid}", "vendor",
         sale | {"deliver": [{"channel": value}]}, "deliver.0.channel"),
        ("POST", "/v1/trials", "vendor", sale | {"reference": value}, "reference"),
        ("POST", f"/v1/purchases/{pid}/reversals", "supervisor", {"reason": value}, "reason"),
        ("POST", "/v1/reprints", "vendor", {"receipt_no": value}, "receipt_no"),
        ("POST", f"/v1/engineering/{pid}", "engineer",
         {"meter": pan, **ENGINEERING, "reason": "ok " + value}, "reason"),
        ("POST", f"/v1/engineering/{pid}", "engineer",
         {"meter": pan, **ENGINEERING, "type": value}, "type"),
        ("POST", "/v1/tokens/verify", "vendor", {"meter": pan, "token": value}, "token"),
        ("POST", f"/v1/purchases/{pid}/deliveries", "vendor",
         {"channel": "sms", "to": value}, "to"),
        ("POST", f"/v1/purchases/{pid}/deliveries", "vendor",
         {"channel": "sms", "lang": value}, "lang"),
    ]


@pytest.mark.parametrize("value", BAD)
def test_v1_body_text_fields_refuse_control_characters(demo: Demo, value: str) -> None:
    pan = demo.meters[0]
    demo.buy(pan)
    for method, path, role, body, field in _bodies(pan, value):
        resp = demo.client.request(method, path, content=json.dumps(body),  # \ud800 escaped
                                   headers=demo.h(role) | {"content-type": "application/json"})
        _refused(resp, field)
        assert "control characters" in resp.json()["message"]


def test_v1_meter_and_amount_with_nul_are_their_own_rules(demo: Demo) -> None:
    resp = demo.client.post(f"/v1/purchases/{uuid.uuid4()}", headers=demo.h("vendor"),
                            json={"meter": demo.meters[0] + NUL, "amount": "100"})
    _refused(resp, "meter", ("INVALID_METER_NUMBER",))
    resp = demo.client.post(f"/v1/purchases/{uuid.uuid4()}", headers=demo.h("vendor"),
                            json={"meter": demo.meters[0], "amount": "10" + NUL})
    _refused(resp, "amount", ("INVALID_AMOUNT",))


def test_v1_reason_may_hold_newlines_and_tabs(demo: Demo) -> None:
    pid = str(uuid.uuid4())
    assert demo.buy(pid=pid).status_code == 201
    resp = demo.client.post(f"/v1/purchases/{pid}/reversals", headers=demo.h("supervisor"),
                            json={"reason": "customer left\n\tbefore the token"})
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(("method", "path", "field"), [
    ("GET", "/v1/deliveries?purchase_id=a%00bcdefgh", "purchase_id"),
    ("GET", "/v1/deliveries?status=a%00b", "status"),
    ("GET", "/v1/deliveries?meter=%1b", "meter"),
    ("GET", "/v1/deliveries?channel=sms%0a", "channel"),
    ("GET", "/v1/meters/{pan}?amount=10%00", "amount"),
    ("GET", "/v1/meters/%00{pan}", "meter"),
    ("GET", "/v1/purchases/abcdefgh%00", "purchase_id"),
    ("POST", "/v1/purchases/abcdefgh%00/reversals", "purchase_id"),
    ("POST", "/v1/engineering/abcdefgh%07", "request_id"),
    ("POST", "/v1/purchases/abcdefgh%00/deliveries", "purchase_id"),
])
def test_v1_paths_and_queries_refuse_control_characters_before_the_database(
        demo: Demo, method: str, path: str, field: str) -> None:
    with no_database(demo):
        resp = demo.client.request(method, path.format(pan=demo.meters[0]),
                                   headers=demo.h("admin"), json={})
    _refused(resp, field)


def test_v1_unauthenticated_nul_is_never_a_500(demo: Demo) -> None:
    with no_database(demo):
        resp = demo.client.get("/v1/deliveries?purchase_id=a%00b",
                               headers={"Authorization": "Bearer nope"})
    _refused(resp, "purchase_id")


# --- the service's last guard ---------------------------------------------------------------


def test_the_service_refuses_what_a_face_missed(demo: Demo) -> None:
    from sts.vending.access.api_keys import authenticate

    svc = demo.service
    with svc.db.read() as conn:
        supervisor = authenticate(conn, demo.keys["supervisor"])
        vendor = authenticate(conn, demo.keys["vendor"])
    pid = str(uuid.uuid4())
    assert demo.buy(pid=pid).status_code == 201
    cases: list[tuple[Any, str]] = [
        (lambda: svc.reverse(pid, "a\x00b", supervisor), "reason"),
        (lambda: svc.deliveries(vendor, purchase_id="a\x00b"), "purchase_id"),
        (lambda: svc.resend(pid, "sms", "+2782\x00", None, vendor), "to"),
        (lambda: svc.purchase(str(uuid.uuid4()), {"meter": demo.meters[0], "amount": "100",
                                                 "deliver": [{"channel": "sms",
                                                              "to": "x\x00"}]}, vendor),
         "deliver[0].to"),
        (lambda: svc.get_purchase("abcdefgh\x00", vendor), "purchase_id"),
        (lambda: svc.trial({"meter": demo.meters[0], "amount": "1\ud800"}, vendor), "amount"),
    ]
    for call, field in cases:
        with pytest.raises(InputError) as err:
            call()
        assert err.value.field == field


def test_request_ids_are_matched_whole() -> None:
    from sts.vending.ledger import check_request_id

    with pytest.raises(InputError):
        check_request_id("abcdefgh\n", "id")  # `$` alone would let a final newline through
    assert check_request_id("abcdefgh", "id") == "abcdefgh"


# --- the web pages: every form and query string --------------------------------------------


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def _web_sign_in(demo: Demo, role: str) -> str:
    """Sign the test client in as the demo operator of `role`; its form CSRF token."""
    from sts.vending.registry import operators as operator_admin

    passwords = operator_admin.demo_passwords(demo.registry)
    login = demo.client.get("/login")
    resp = demo.client.post("/login", data={"csrf": _csrf(login.text),
                                            "username": passwords[role]["username"],
                                            "password": passwords[role]["password"]},
                            follow_redirects=False)
    assert resp.status_code == 303, resp.text
    return _csrf(demo.client.get("/admin/meters" if role == "admin" else "/pos").text)


def _web_posts() -> list[str]:
    """Every form the web pages accept (their routers' POST routes)."""
    from fastapi.routing import APIRoute

    from sts.web import (
        backoffice,
        backoffice_people,
        backoffice_vendors,
        engineering,
        payments_office,
        pos,
        registers,
        reports,
        signin,
        simulator_pages,
    )

    modules = (signin, pos, backoffice, registers, backoffice_vendors, backoffice_people,
               engineering, reports, simulator_pages, payments_office)
    return sorted({r.path for m in modules for r in m.router.routes
                   if isinstance(r, APIRoute) and "POST" in (r.methods or ())})


@pytest.mark.parametrize("value", ["a\x00b", "a\x1bb"])
def test_every_web_form_refuses_control_characters_before_the_database(demo: Demo,
                                                                       value: str) -> None:
    posts = _web_posts()
    assert "/login" in posts and len(posts) >= 15, posts
    for path in posts:
        for field in ("username", "name", "reason", "meter"):
            with no_database(demo):
                resp = demo.client.post(path.replace("{purchase_id}", "abcdefgh")
                                        .replace("{provider}", "mpesa")
                                        .replace("{provider_id}", "RKX1"),
                                        data={"csrf": "x", field: value, "password": "p"},
                                        follow_redirects=False)
            assert resp.status_code == 422, (path, resp.status_code, resp.text[:300])
            assert "text/html" in resp.headers["content-type"]
            assert f"{field} must not contain control characters" in resp.text.lower()


@pytest.mark.slow
def test_web_forms_signed_in_keep_newlines_and_refuse_nul(demo: Demo) -> None:
    csrf = _web_sign_in(demo, "admin")
    ok = demo.client.post("/admin/customers", follow_redirects=False, data={
        "csrf": csrf, "account_no": "ACC-17", "name": "Thandi", "address": "1 Main Rd\r\nTown"})
    assert ok.status_code == 303, ok.text[:500]
    bad = demo.client.post("/admin/customers", data={
        "csrf": csrf, "account_no": "ACC-18", "name": "Tha\x00ndi", "address": ""})
    assert bad.status_code == 422 and "name must not contain" in bad.text.lower()
    from sts.vending.registry import catalogue

    names = {c["account_no"]: c for c in catalogue.list_customers(demo.service.db)}
    assert "ACC-18" not in names and names["ACC-17"]["address"] == "1 Main Rd\nTown"


@pytest.mark.parametrize("path", ["/login?next=%00", "/pos?meter=%00", "/admin/meters?q=a%00",
                                  "/reports?start=%1b", "/pos/sale/abcdefgh%00"])
def test_web_query_strings_and_paths_refuse_control_characters(demo: Demo, path: str) -> None:
    with no_database(demo):
        resp = demo.client.get(path, follow_redirects=False)
    assert resp.status_code == 422
    assert "must not contain control characters" in resp.text.lower()


# --- customer data is rate-limited wherever it is returned ---------------------------------


def test_trials_and_lookups_share_one_limit_per_caller(demo: Demo) -> None:
    demo.service.lookup_limit = 3
    sale = {"meter": demo.meters[0], "amount": "100"}
    for _ in range(2):
        assert demo.client.post("/v1/trials", json=sale,
                                headers=demo.h("vendor")).status_code == 200
    assert demo.client.get(f"/v1/meters/{demo.meters[0]}",
                           headers=demo.h("vendor")).status_code == 200
    over = demo.client.post("/v1/trials", json=sale, headers=demo.h("vendor"))
    assert over.status_code == 429 and over.json()["code"] == "RATE_LIMITED", over.text
    assert "name" not in over.text
    look = demo.client.get(f"/v1/meters/{demo.meters[0]}", headers=demo.h("vendor"))
    assert look.status_code == 429
    # per caller: another key still reads
    assert demo.client.post("/v1/trials", json=sale,
                            headers=demo.h("supervisor")).status_code == 200
    demo.clock.advance(minutes=1)  # a new minute, a new allowance
    assert demo.client.post("/v1/trials", json=sale,
                            headers=demo.h("vendor")).status_code == 200


def test_web_point_of_sale_lookups_are_limited(demo: Demo) -> None:
    demo.service.lookup_limit = 3
    _web_sign_in(demo, "vendor")
    pages = [demo.client.get(f"/pos?meter={demo.meters[0]}") for _ in range(4)]
    assert [p.status_code for p in pages[:3]] == [200, 200, 200]
    assert "more than 3 lookups and trials a minute" in pages[3].text.lower()


# --- no answer carrying a token is cached --------------------------------------------------


def test_every_v1_answer_is_no_store(demo: Demo) -> None:
    pid = str(uuid.uuid4())
    answers = [demo.buy(pid=pid), demo.buy(pid=pid),
               demo.client.get(f"/v1/purchases/{pid}", headers=demo.h("vendor")),
               demo.client.post("/v1/reprints", json={"meter": demo.meters[0]},
                                headers=demo.h("vendor")),
               demo.client.post(f"/v1/engineering/{uuid.uuid4()}", headers=demo.h("engineer"),
                                json={"meter": known_pan(), **ENGINEERING}),
               demo.client.get("/v1/deliveries", headers=demo.h("admin")),
               demo.client.get(f"/v1/meters/{demo.meters[0]}", headers=demo.h("vendor")),
               demo.client.get("/v1/nothing"),
               demo.client.post(f"/v1/purchases/{uuid.uuid4()}", content=b"x" * 100_000)]
    for resp in answers:
        assert resp.headers.get("cache-control") == "no-store", (resp.status_code, resp.text)
    assert answers[0].status_code == 201 and answers[4].status_code == 201


# --- files holding key material or PINs -----------------------------------------------------


def test_kek_file_must_be_private(tmp_path: Path) -> None:
    from sts.vending.keys.software import create_kek_file, load_kek

    made = tmp_path / "new.kek"
    create_kek_file(made)
    assert made.stat().st_mode & 0o777 == 0o600
    assert len(load_kek(made)) == 32
    for mode in (0o644, 0o640, 0o604, 0o620):
        made.chmod(mode)
        with pytest.raises(ConfigError) as err:
            load_kek(made)
        assert str(made) in err.value.message and f"chmod 600 {made}" in err.value.message


def test_pkcs11_pin_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    pytest.importorskip("pkcs11")
    from sts.vending.keys.pkcs11 import Pkcs11SecurityModule, pin_from_env

    monkeypatch.delenv("STS_PKCS11_PIN", raising=False)
    pin = tmp_path / "pin"
    pin.write_text("1234\n")
    pin.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        Pkcs11SecurityModule.from_settings(lib_path="/no/lib.so", token_label="t",
                                           pin_file=str(pin), cache_seconds=1,
                                           sta_tables=None, software=None)
    assert str(pin) in err.value.message and f"chmod 600 {pin}" in err.value.message
    with pytest.raises(ConfigError):
        pin_from_env(str(pin))()
    pin.chmod(0o600)
    assert pin_from_env(str(pin))() == "1234"


# --- ids the server derives -----------------------------------------------------------------


def test_a_client_id_shaped_like_a_campaign_id_does_not_block_the_campaign(
        service: Any, clock: Any) -> None:
    import sqlalchemy as sa

    from sts.vending.storage.tables import campaigns, meters
    from sts.vending.usecases import campaign as camp
    from tests.support.keychange import SGC, rollover_setup

    demo, pans = rollover_setup(service, clock, meters=2)
    camp.create(service, "rollover", sgc=SGC, to_krn=2, from_krn=1)
    with service.db.read() as conn:
        cid = conn.scalar(sa.select(campaigns.c.id).where(campaigns.c.name == "rollover"))
        mids = [conn.scalar(sa.select(meters.c.id).where(meters.c.pan == p)) for p in pans]
    for mid in mids:  # the ids earlier versions gave the campaign's meters, taken by a client
        assert demo.buy(demo.meters[0], "10", pid=f"campaign:{cid}:{mid}").status_code == 201
    done = list(camp.run(service, "rollover"))
    assert [r["status"] for r in done] == ["done", "done"], done
