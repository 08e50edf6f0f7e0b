"""The published OpenAPI contract, and a property-based run (schemathesis) over every /v1
operation against the app in-process on SQLite: no 5xx, every answer as documented."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.fixtures import FakeClock, make_demo

pytestmark = pytest.mark.slow  # a fuzz of every operation: ./run test and CI run it

ROLE = {  # the role whose key each operation is called with (the one allowed to do it)
    "/v1/meters/{meter}": "vendor",
    "/v1/purchases/{purchase_id}": "vendor",
    "/v1/purchases/{purchase_id}/reversals": "supervisor",
    "/v1/trials": "vendor",
    "/v1/reprints": "vendor",
    "/v1/engineering/{request_id}": "engineer",
    "/v1/tokens/verify": "vendor",
    "/v1/audit/verify": "auditor",
    "/v1/deliveries": "vendor",
    "/v1/purchases/{purchase_id}/deliveries": "vendor",
    "/v1/payments": "auditor",
    "/v1/payments/{provider}/{provider_id}/settlement": "admin",
}


@pytest.fixture
def sqlite_demo(tmp_path: Path) -> Iterator[Any]:
    from sts.vending.config import Settings, open_service

    kek = tmp_path / "kek.hex"
    kek.write_text(secrets.token_bytes(32).hex())
    kek.chmod(0o600)
    clock = FakeClock()
    svc = open_service(Settings(db_url=str(tmp_path / "v.sqlite3"), kek_file=str(kek),
                                lookup_limit=100_000), clock=clock, run_migrations=True)
    yield make_demo(svc, clock)
    svc.db.dispose()


def spec_of(demo: Any) -> dict[str, Any]:
    out: dict[str, Any] = demo.client.get("/openapi.json").json()
    return out


def test_every_operation_documented(sqlite_demo: Any) -> None:
    spec = spec_of(sqlite_demo)
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    error = spec["components"]["schemas"]["ErrorBody"]
    assert {"code", "message"} <= set(error["required"]) and "field" in error["properties"]
    ops = [(path, m, op) for path, item in spec["paths"].items() if path.startswith("/v1/")
           for m, op in item.items()]
    assert {p for p, _, _ in ops} == set(ROLE)
    for path, method, op in ops:
        where = f"{method.upper()} {path}"
        assert op["security"] == [{"bearerAuth": []}], where
        for status, resp in op["responses"].items():
            schema = resp["content"]["application/json"]["schema"]
            assert schema.get("$ref"), f"{where} {status} has no schema"
            if status.startswith(("4", "5")):
                assert schema["$ref"].endswith("/ErrorBody"), where
        ok = [s for s in op["responses"] if s.startswith("2")]
        assert ok and all(op["responses"][s]["content"]["application/json"]["schema"]["$ref"]
                          != "#/components/schemas/ErrorBody" for s in ok), where
        for status in ("401", "422", "500"):
            assert status in op["responses"], f"{where} lacks {status}"
        if "requestBody" in op:
            assert "413" in op["responses"], where


def test_responses_match_their_models(sqlite_demo: Any) -> None:
    """Real answers of each operation validate against the documented models."""
    from sts.server import schemas as s
    from tests.fixtures import known_pan

    d = sqlite_demo
    pan = known_pan()
    sale = d.buy(pan, "100")
    s.PurchaseOut.model_validate(sale.json())
    pid = sale.json()["purchase_id"]
    s.LookupOut.model_validate(d.client.get(f"/v1/meters/{pan}?amount=20",
                                            headers=d.h("vendor")).json())
    s.PurchaseOut.model_validate(d.client.get(f"/v1/purchases/{pid}",
                                              headers=d.h("vendor")).json())
    s.TrialOut.model_validate(d.client.post("/v1/trials", json={"meter": pan, "amount": "10"},
                                            headers=d.h("vendor")).json())
    s.ReprintOut.model_validate(d.client.post("/v1/reprints", json={"meter": pan},
                                              headers=d.h("vendor")).json())
    resent = d.client.post(f"/v1/purchases/{pid}/deliveries",
                           json={"channel": "sms", "to": "+27821234567"}, headers=d.h("vendor"))
    assert resent.status_code == 202, resent.text
    s.DeliveryOut.model_validate(resent.json())
    assert resent.json()["created_at"].endswith("+00:00")  # stored in UTC, shown with offset
    listed = d.client.get(f"/v1/deliveries?purchase_id={pid}", headers=d.h("vendor")).json()
    assert [x.id for x in s.DeliveriesOut.model_validate(listed).deliveries] \
        == [resent.json()["id"]]
    got = s.PurchaseOut.model_validate(d.client.get(f"/v1/purchases/{pid}",
                                                    headers=d.h("vendor")).json())
    assert got.delivery is not None and [x.channel for x in got.delivery] == ["sms"]
    tok = sale.json()["tokens"][0]["token"]
    s.VerifyOut.model_validate(d.client.post("/v1/tokens/verify",
                                             json={"meter": pan, "token": tok},
                                             headers=d.h("vendor")).json())
    eng = d.client.post("/v1/engineering/abcdefgh-1", json={"meter": pan, "type": "test",
                                                             "reason": "work order 1"},
                        headers=d.h("engineer"))
    s.EngineeringOut.model_validate(eng.json())
    s.ReversalOut.model_validate(d.client.post(f"/v1/purchases/{pid}/reversals",
                                               json={"reason": "never printed"},
                                               headers=d.h("supervisor")).json())
    s.AuditOut.model_validate(d.client.get("/v1/audit/verify", headers=d.h("auditor")).json())


OPERATIONS = [("GET", "/v1/meters/{meter}"), ("POST", "/v1/purchases/{purchase_id}"),
              ("GET", "/v1/purchases/{purchase_id}"),
              ("POST", "/v1/purchases/{purchase_id}/reversals"), ("POST", "/v1/trials"),
              ("POST", "/v1/reprints"), ("POST", "/v1/engineering/{request_id}"),
              ("POST", "/v1/tokens/verify"), ("GET", "/v1/audit/verify"),
              ("GET", "/v1/deliveries"), ("POST", "/v1/purchases/{purchase_id}/deliveries")]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_schemathesis(sqlite_demo: Any, method: str, path: str) -> None:
    """Arbitrary requests, valid and invalid by the schema: no 5xx, answers as documented.

    `positive_data_acceptance` is left out: a body that fits the schema may still break a
    business rule (an unknown meter, an amount below the minimum), which is a documented 4xx.
    """
    from sts.server.app import create_app

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(sqlite_demo.service))
    op = schema[path][method]
    cases = op.as_strategy(GenerationMode.POSITIVE) | op.as_strategy(GenerationMode.NEGATIVE)
    headers = sqlite_demo.h(ROLE[path])

    @given(cases)
    @settings(max_examples=20, suppress_health_check=list(HealthCheck),
              database=None)
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    run()
