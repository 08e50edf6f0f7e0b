"""Bad input anywhere gets a declared 4xx with an ErrorDetail, never a 5xx: valid messages of
every operation, mutated at random (fields dropped, replaced by wrong types, huge or empty
values), checked against the hand-written interface document."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.electrum.test_openapi_client import DocumentClient
from tests.fixtures import known_pan
from tests.support.electrum import Switch, envelope

PID = "3f1b6a2e-8d4c-4b7a-9e61-2c5d0f9a7b10"
AID = "9c0d7e51-2b3a-4f68-8d19-6a7e5b4c3d21"


def advice(**extra: Any) -> dict[str, Any]:
    return {"id": AID, "requestId": PID, "time": "2025-03-03T10:00:41.5Z",
            "thirdPartyIdentifiers": [], **extra}


MESSAGES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("createMeterLookup", {"lookupId": PID}, envelope(PID, meter={"meterId": known_pan()})),
    ("createTokenPurchaseRequest", {"purchaseId": PID}, envelope(
        PID, meter={"meterId": known_pan()}, purchaseAmount={"amount": 1000, "currency": "710"},
        tenders=[{"tenderType": "CASH", "amount": {"amount": 1000, "currency": "710"}}])),
    ("retryPurchaseRequest", {"purchaseId": PID}, envelope(
        PID, meter={"meterId": known_pan()}, purchaseAmount={"amount": 1000, "currency": "710"})),
    ("trialTokenPurchaseRequest", {"trialId": PID}, envelope(
        PID, meter={"meterId": known_pan()}, purchaseAmount={"amount": 1000, "currency": "710"})),
    ("confirmTokenPurchase", {"purchaseId": PID, "confirmationId": AID}, advice(tenders=[])),
    ("reverseTokenPurchase", {"purchaseId": PID, "reversalId": AID},
     advice(reversalReason="CANCELLED")),
    ("requestTokenReprint", {"reprintId": PID}, envelope(PID, meter={"meterId": known_pan()},
                                                         originalRef="0000000001")),
    ("createKeyChangeTokenRequest", {"requestId": PID}, envelope(PID,
                                                                 meter={"meterId": known_pan()})),
    ("confirmKeyChange", {"requestId": PID, "confirmationId": AID}, advice()),
    ("createFaultReport", {"requestId": PID}, envelope(
        PID, meter={"meterId": known_pan()}, contactNumber="0821234567", faultType="NoTrip")),
]
JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(),
                 st.text(max_size=300), st.just(""), st.just("9" * 70), st.lists(st.integers(),
                                                                                  max_size=3),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, (*prefix, i))
    return out


@settings(max_examples=60, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_messages_never_fail_the_server(switch: Switch, data: st.DataObject) -> None:
    client = DocumentClient(switch.demo.client, "/prepaidutility/v3", switch.username,
                            switch.password, check_requests=False)
    operation, params, message = data.draw(st.sampled_from(MESSAGES))
    body = copy.deepcopy(message)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.sampled_from(paths(body) or [("id",)]))
        parent: Any = body
        for step in where[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(where[-1], None)
        else:
            parent[where[-1]] = data.draw(JUNK)
    status, payload = client.call(operation, body, **params)  # validates the answer
    assert status < 500, json.dumps(payload)

