"""Issue 17, ids: every id the docs allow (`ledger.REQUEST_ID`: 8-64 of [A-Za-z0-9._:-], a
letter or digit first) fits every column it is written to, on every id-taking operation of /v1
and Electrum; ids the server derives (reversals, campaigns) never collide with a client's and
always fit.  SQLite and PostgreSQL (where a too-long value is an error, not a truncation)."""

from __future__ import annotations

import string
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sts.vending.ledger import REQUEST_ID, derived_id
from tests.fixtures import known_pan
from tests.support.electrum import Switch, drn_of, envelope

FIRST = string.ascii_letters + string.digits
REST = FIRST + "._:-"
ids = st.builds(lambda a, b: a + b, st.sampled_from(FIRST),
                st.text(alphabet=REST, min_size=7, max_size=63))
OPS = "PRETFLKCVQX"  # one first letter per operation, so one example's ids never collide


def _ok(resp: Any, *statuses: int) -> Any:
    assert resp.status_code in statuses, (resp.request.url, resp.status_code, resp.text)
    return resp


def _every_operation(switch: Switch, base: str) -> None:
    """Run every id-taking operation once with an id made from `base` (same length)."""
    demo = switch.demo
    pan, drn = known_pan(), drn_of(known_pan())
    op = {c: c + base[1:] for c in OPS}
    for value in op.values():
        assert REQUEST_ID.fullmatch(value)
    # /v1: purchase, reversal, engineering, resend, repeat
    _ok(demo.buy(pan, pid=op["P"]), 201)
    _ok(demo.buy(pan, pid=op["P"]), 200)
    _ok(demo.client.post(f"/v1/purchases/{op['P']}/reversals", json={"reason": "never keyed"},
                         headers=demo.h("supervisor")), 201)
    _ok(demo.buy(pan, pid=op["R"]), 201)
    _ok(demo.client.post(f"/v1/purchases/{op['R']}/deliveries", headers=demo.h("vendor"),
                         json={"channel": "sms", "to": "+27821234567"}), 202)
    _ok(demo.client.get(f"/v1/deliveries?purchase_id={op['R']}", headers=demo.h("vendor")), 200)
    _ok(demo.client.post(f"/v1/engineering/{op['E']}", headers=demo.h("engineer"),
                         json={"meter": pan, "type": "clear_tamper", "reason": "work order"}),
        201)
    # Electrum: purchase, confirmation, reversal advice, lookup, trial, reprint, fault report
    _ok(switch.buy(drn, 1000, pid=op["T"]), 201)
    _ok(switch.confirm(op["T"], op["C"]), 202)
    _ok(switch.buy(drn, 1000, pid=op["V"]), 201)
    _ok(switch.reverse(op["V"], op["X"]), 202)
    _ok(switch.lookup(drn, op["L"]), 201)
    _ok(switch.post(f"/tokenPurchases/{op['K']}/trial",
                    switch.purchase_request(drn, 1000, pid=op["K"])), 200)
    _ok(switch.post(f"/tokenReprints/{op['Q']}", envelope(op["Q"], meter={"meterId": drn})),
        200)
    _ok(switch.post(f"/faultReports/{op['F']}", envelope(
        op["F"], meter={"meterId": drn}, contactNumber="0821234567", faultType="MeterDead")),
        201)


@settings(max_examples=6, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@pytest.mark.slow
@given(ids)
@example("a" * 8)
@example("b" * 56)
@example("c" * 63)
@example("d" * 64)
@example("0.:-_" + "9" * 59)
def test_every_allowed_id_fits_every_operation(switch: Switch, base: str) -> None:
    # ids of earlier examples (the database is the test's): new ones made unique, same length
    tag = uuid.uuid4().hex[:6]
    base = base[:-6] + tag if len(base) >= 16 else base[:2] + tag + base[8:]
    _every_operation(switch, base)


@pytest.mark.parametrize("length", [55, 56, 60, 64])
def test_a_long_sale_id_can_be_reversed(switch: Switch, length: int) -> None:
    demo = switch.demo
    pid = (uuid.uuid4().hex * 2)[:length]
    _ok(demo.buy(known_pan(), pid=pid), 201)
    first = _ok(demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "lost"},
                                 headers=demo.h("supervisor")), 201)
    again = _ok(demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "lost"},
                                 headers=demo.h("supervisor")), 200)
    assert again.json() == first.json()
    assert len(derived_id("reversal", pid)) <= 64


def test_a_client_id_shaped_like_a_reversal_does_not_block_it(switch: Switch) -> None:
    demo = switch.demo
    pid = str(uuid.uuid4())
    _ok(demo.buy(known_pan(), pid=pid), 201)
    _ok(demo.buy(known_pan(), pid=f"reversal:{pid}"), 201)  # a client's own id
    _ok(demo.client.post(f"/v1/purchases/{pid}/reversals", json={"reason": "lost"},
                         headers=demo.h("supervisor")), 201)
    # and the client's purchase is itself still reversible
    _ok(demo.client.post(f"/v1/purchases/reversal:{pid}/reversals", json={"reason": "lost"},
                         headers=demo.h("supervisor")), 201)


@given(st.sampled_from(["reversal", "campaign"]), ids)
@settings(max_examples=200)
def test_derived_ids_are_outside_the_client_grammar_and_fit(kind: str, of: str) -> None:
    made = derived_id(kind, of)
    assert len(made) <= 64 and not REQUEST_ID.fullmatch(made)
    assert made == derived_id(kind, of) and made != derived_id(kind, of + "x")
