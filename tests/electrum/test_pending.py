"""Advices for a purchase whose outcome is not stored yet: still running (wait, then 504 so
the client repeats), sold just before a crash (found and finished), or dead (404)."""

from __future__ import annotations

from sts.vending import messages
from tests.fixtures import known_pan
from tests.support.electrum import Switch, new_id


def pending_purchase(switch: Switch) -> str:
    """A purchase whose id was claimed but whose outcome was never written (running, or the
    server died)."""
    pid = new_id()
    svc = switch.demo.service
    messages.claim(svc.db, message_id=pid, operation="purchase", request_hash="x",
                   request={"id": pid}, now=svc.now())
    return pid


def test_advice_for_a_running_purchase_answers_unknown_then_finds_it(switch: Switch) -> None:
    app = switch.demo.client.app
    app.state.electrum_advice_wait = 0.2  # the advice deadline, shortened for the test
    pid = pending_purchase(switch)
    aid = new_id()
    r = switch.confirm(pid, aid)
    assert r.status_code == 504 and r.json()["errorType"] == "OUTCOME_UNKNOWN"
    # the sale commits (the server then dies before recording the outcome)
    svc = switch.demo.service
    key = switch.demo.keys["vendor"]
    svc.purchase_json(pid, {"meter": known_pan(), "amount": "20"}, key)
    again = switch.confirm(pid, aid)  # the client repeats the same advice
    assert again.status_code == 202, again.text
    message = messages.get(svc.db, pid)
    assert message is not None and message.status == "done"


def test_advice_for_a_purchase_that_never_happened(switch: Switch) -> None:
    switch.demo.client.app.state.electrum_advice_wait = 0.2
    pid = pending_purchase(switch)
    switch.demo.clock.advance(minutes=5)  # long past any client's timeout: it died
    # a reversal advice for it is accepted and remembered (the purchase may yet be retried:
    # it would then be refused); a confirmation has nothing to confirm
    r = switch.reverse(pid)
    assert r.status_code == 202, r.text
    assert switch.confirm(pid).status_code == 404
