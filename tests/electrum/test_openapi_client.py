"""A client built only from the hand-written interface document (not from our code): it finds
each operation by its operationId, checks every message it sends against the document's
request schema, and every answer against the schema of the status it got (which must be one
the document declares).  It drives the digest's flows against the server."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import jsonschema_rs

from tests.electrum.test_openapi import load_doc
from tests.fixtures import known_pan, virtual_meter
from tests.support.electrum import Switch, drn_of, envelope


class DocumentClient:
    def __init__(self, http: Any, base: str, username: str, password: str, *,
                 check_requests: bool = True) -> None:
        self.doc = load_doc()
        self.check_requests = check_requests
        self.http, self.base = http, base
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}
        self.ops: dict[str, tuple[str, dict[str, Any]]] = {
            item["post"]["operationId"]: (path, item["post"])
            for path, item in self.doc["paths"].items()}

    def validator(self, schema: dict[str, Any]) -> Any:
        return jsonschema_rs.Draft202012Validator(
            schema | {"components": self.doc["components"]})

    def call(self, operation_id: str, body: dict[str, Any], **params: str) -> tuple[int, Any]:
        path, op = self.ops[operation_id]
        query = {}
        for p in op["parameters"]:
            if p["in"] == "path":
                path = path.replace("{" + p["name"] + "}", params[p["name"]])
            else:
                query[p["name"]] = params[p["name"]]
        req_schema = op["requestBody"]["content"]["application/json"]["schema"]
        if self.check_requests:  # a proper client only sends valid messages
            self.validator(req_schema).validate(body)
        r = self.http.post(self.base + path, json=body, params=query, headers=self.headers)
        declared = op["responses"].get(str(r.status_code))
        assert declared is not None, f"{operation_id}: undeclared status {r.status_code}"
        if "$ref" in declared:
            declared = self.doc["components"]["responses"][declared["$ref"].rsplit("/", 1)[-1]]
        content = declared.get("content")
        if content is None:
            assert r.content == b""
            return r.status_code, None
        payload = r.json()
        errors = [e.message for e in self.validator(content["application/json"]["schema"])
                  .iter_errors(payload)]
        assert not errors, f"{operation_id} {r.status_code}: {errors}"
        return r.status_code, payload


def uid() -> str:
    return str(uuid.uuid4())


def test_flows_through_the_document(switch: Switch) -> None:
    client = DocumentClient(switch.demo.client, "/prepaidutility/v3", switch.username,
                            switch.password)
    meter_id = drn_of(known_pan())
    lid = uid()
    status, look = client.call("createMeterLookup", envelope(lid, meter={"meterId": meter_id}),
                               lookupId=lid)
    assert status == 201 and look["meter"]["meterId"] == meter_id

    pid = uid()
    purchase = envelope(pid, meter={"meterId": meter_id},
                        purchaseAmount={"amount": 10000, "currency": "710"})
    status, sale = client.call("createTokenPurchaseRequest", purchase, purchaseId=pid)
    assert status == 201
    status, again = client.call("retryPurchaseRequest", dict(purchase, id=uid()), purchaseId=pid)
    assert status == 202 and again["tokens"] == sale["tokens"]
    meter = virtual_meter(known_pan(), switch.demo.clock)
    assert meter.enter(sale["tokens"][0]["token"]).result == "accept"
    cid = uid()
    status, _ = client.call("confirmTokenPurchase", {
        "id": cid, "requestId": pid, "time": "2025-03-03T10:01:00Z",
        "thirdPartyIdentifiers": sale["thirdPartyIdentifiers"], "tenders": []},
        purchaseId=pid, confirmationId=cid)
    assert status == 202
    status, _ = client.call("notifyTokenPurchase", sale, purchaseId=pid)
    assert status == 202

    pid2 = uid()
    status, sale2 = client.call("createTokenPurchaseRequest",
                                dict(purchase, id=pid2,
                                     purchaseAmount={"amount": 2000, "currency": "710"}),
                                purchaseId=pid2)
    assert status == 201
    rid = uid()
    status, _ = client.call("reverseTokenPurchase", {
        "id": rid, "requestId": pid2, "time": "2025-03-03T10:02:00Z",
        "thirdPartyIdentifiers": sale2["thirdPartyIdentifiers"], "reversalReason": "CANCELLED"},
        purchaseId=pid2, reversalId=rid)
    assert status == 202

    tid = uid()
    status, trial = client.call("trialTokenPurchaseRequest", dict(purchase, id=tid), trialId=tid)
    assert status == 200 and trial["tokens"][0]["token"] == "0" * 20
    rpid = uid()
    status, reprint = client.call("requestTokenReprint",
                                  envelope(rpid, meter={"meterId": meter_id},
                                           originalRef=sale["vatInvoiceNumber"]),
                                  reprintId=rpid)
    assert status == 200 and reprint["tokens"] == sale["tokens"]
    kid = uid()
    status, err = client.call("createKeyChangeTokenRequest",
                              envelope(kid, meter={"meterId": meter_id}), requestId=kid)
    assert status == 400 and err["errorType"] == "METER_KEY_INVALID"  # no key change pending
    fid = uid()
    status, fault = client.call("createFaultReport", envelope(
        fid, meter={"meterId": meter_id}, contactNumber="0821234567", faultType="MeterDead"),
        requestId=fid)
    assert status == 201 and fault["reference"]
    ghost = uid()
    status, err = client.call("confirmKeyChange", {
        "id": ghost, "requestId": kid, "time": "2025-03-03T10:03:00Z",
        "thirdPartyIdentifiers": []}, requestId=kid, confirmationId=ghost)
    assert status == 404 and err["errorType"] == "UNABLE_TO_LOCATE_RECORD"
    # every refusal is a declared ErrorDetail too
    bad = uid()
    status, err = client.call("createTokenPurchaseRequest",
                              dict(purchase, id=bad, meter={"meterId": "12345678901"}),
                              purchaseId=bad)
    assert status == 400 and err["errorType"] == "UNKNOWN_METER_ID"
    assert json.dumps(err)
