"""The interface's models: Electrum's own example messages, the digest's skeletons, and the
validation rules (whole-string patterns, lengths, required fields, lenient amounts, times)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from sts.electrum import base
from sts.electrum import models as m

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "electrum-psi" / "examples"
if not EXAMPLES.is_dir():
    EXAMPLES = Path("/work/shared/reference/electrum-psi/examples")

PAYMENT = TypeAdapter(base.PaymentMethod)
PIN = TypeAdapter(base.Pin)

# the fixtures that are complete messages of a model: parse, then serialise to equal JSON
COMPLETE: dict[str, Any] = {
    "Address.json": base.Address, "BasicAdvice.json": base.BasicAdvice,
    "Customer.json": base.Customer, "LoyaltyCardPayment.json": PAYMENT,
    "PinHashed.json": PIN, "QrPayment.json": PAYMENT, "RewardPayment.json": PAYMENT,
    "WalletPayment.json": PAYMENT,
}
# fixtures that are not valid wire messages (NOTICE.md says so): the model must refuse them,
# naming the rule; each completed with its missing required values then round-trips
PARTIAL: dict[str, tuple[Any, str, dict[str, Any]]] = {
    # holds only operatorId: institution, terminalId and merchant are @NotNull
    "Originator.json": (base.Originator, "institution", {
        "institution": {"id": "1", "name": "I"}, "terminalId": "T0000001",
        "merchant": {"merchantType": "5411", "merchantId": "000000000012345",
                     "merchantName": {"name": "S", "city": "C", "region": "GP",
                                      "country": "ZA"}}}),
    # an ENCRYPTED_PIN without its required pinBlock
    "CardPayment.json": (PAYMENT, "pinBlock", {"pan": "4111111111111111",
                                               "pin": {"type": "ENCRYPTED_PIN",
                                                       "pinBlock": "0123456789ABCDEF"}}),
    # a log line (masked card number), not a wire message
    "LoyaltyCardPaymentMasked.json": (PAYMENT, "cardNumber", {"cardNumber": "1111222233334444"}),
}


def dump(adapter: Any, value: Any) -> Any:
    if isinstance(adapter, TypeAdapter):
        return adapter.dump_python(value, mode="json", by_alias=True, exclude_none=True)
    return value.dump()


def parse(adapter: Any, data: Any) -> Any:
    if isinstance(adapter, TypeAdapter):
        return adapter.validate_python(data)
    return adapter.model_validate(data)


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.json")) == sorted([*COMPLETE, *PARTIAL])


@pytest.mark.parametrize("name", sorted(COMPLETE))
def test_example_round_trip(name: str) -> None:
    data = json.loads((EXAMPLES / name).read_text())
    model = COMPLETE[name]
    assert dump(model, parse(model, data)) == data
    # and from the JSON text itself (numbers and strings exactly as on the wire)
    if not isinstance(model, TypeAdapter):
        assert model.model_validate_json((EXAMPLES / name).read_text()).dump() == data


@pytest.mark.parametrize("name", sorted(PARTIAL))
def test_partial_example_refused_then_round_trips(name: str) -> None:
    data = json.loads((EXAMPLES / name).read_text())
    model, missing, completion = PARTIAL[name]
    with pytest.raises(ValidationError) as info:
        parse(model, data)
    assert missing in str(info.value)
    completed = {**data, **completion}
    assert dump(model, parse(model, completed)) == completed


# the digest's constructed skeletons (§5.2)
PURCHASE_REQUEST = {
    "id": "3f1b6a2e-8d4c-4b7a-9e61-2c5d0f9a7b10", "time": "2020-11-20T09:15:30.123Z",
    "originator": {"institution": {"id": "0001", "name": "Example Retail Group"},
                   "terminalId": "T0000001",
                   "merchant": {"merchantType": "5411", "merchantId": "000000000012345",
                                "merchantName": {"name": "Example Store", "city": "Johannesburg",
                                                 "region": "GP", "country": "ZA"}}},
    "client": {"id": "0001", "name": "Example Retail Group"},
    "thirdPartyIdentifiers": [{"institutionId": "0001", "transactionIdentifier": "POS-000123"}],
    "meter": {"meterId": "12345678903"}, "purchaseAmount": {"amount": 10000, "currency": "710"},
    "utilityType": "ELECTRICITY",
    "tenders": [{"tenderType": "CASH", "amount": {"amount": 10000, "currency": "710"},
                 "accountType": "DEFAULT"}],
}
PURCHASE_RESPONSE = {
    **{k: v for k, v in PURCHASE_REQUEST.items() if k not in ("purchaseAmount", "tenders")},
    "thirdPartyIdentifiers": [
        {"institutionId": "0001", "transactionIdentifier": "POS-000123"},
        {"institutionId": "9001", "transactionIdentifier": "VND-20201120-000042"}],
    "meter": {"meterId": "12345678903", "serviceType": "ELEC", "supplyGroupCode": "123456",
              "keyRevisionNum": "1", "tariffIndex": "01", "tokenTechCode": "02",
              "algorithmCode": "07"},
    "customer": {"firstName": "A", "lastName": "Customer"},
    "utility": {"name": "Example Municipality", "vatRegNum": "4000000000", "message": "Thank you"},
    "tokens": [{"tokenType": "STD", "units": 64.7,
                "amount": {"amount": 8696, "currency": "710", "tax": 1304, "taxType": "VAT",
                           "taxRate": 15},
                "receiptNum": "VND-20201120-000042", "token": "12345678901234567890"}],
    "purchaseTotal": {"amount": 8696, "currency": "710"},
    "taxTotal": {"amount": 1304, "currency": "710"},
}
CONFIRMATION = {
    "id": "9c0d7e51-2b3a-4f68-8d19-6a7e5b4c3d21", "requestId": PURCHASE_REQUEST["id"],
    "time": "2020-11-20T09:15:41.500Z",
    "thirdPartyIdentifiers": PURCHASE_RESPONSE["thirdPartyIdentifiers"],
    "tenders": [{"tenderType": "CASH", "amount": {"amount": 10000, "currency": "710"}}],
}
ERROR = {"errorType": "UNKNOWN_METER_ID", "errorMessage": "Unknown meter",
         "requestType": "TOKEN_PURCHASE_REQUEST", "id": PURCHASE_REQUEST["id"],
         "detailMessage": {"meterId": "12345678904", "reason": "DRN check digit invalid"}}


@pytest.mark.parametrize(("model", "data"), [
    (m.PurchaseRequest, PURCHASE_REQUEST), (m.PurchaseResponse, PURCHASE_RESPONSE),
    (m.ConfirmationAdvice, CONFIRMATION),
    (m.ReversalAdvice, {**{k: v for k, v in CONFIRMATION.items() if k != "tenders"},
                        "reversalReason": "TIMEOUT"}),
    (m.ErrorDetail, ERROR),
])
def test_digest_skeletons_round_trip(model: Any, data: dict[str, Any]) -> None:
    text = json.dumps(data)
    assert json.loads(json.dumps(model.model_validate_json(text).dump())) == data


def errors_of(model: Any, data: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]


def with_(path: str, value: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(data or PURCHASE_REQUEST))
    *parents, last = path.split(".")
    node: Any = out  # a dict or a list on the way down
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.mark.parametrize(("path", "value"), [
    ("originator.merchant.merchantType", "54111"),  # whole-string pattern
    ("originator.merchant.merchantType", "541"),
    ("originator.merchant.merchantType", "5411\n"),
    ("originator.terminalId", "T000001"),  # exactly 8
    ("originator.merchant.merchantId", "1234"),  # exactly 15
    ("originator.merchant.merchantName.name", "x" * 24),  # at most 23
    ("originator.merchant.merchantName.region", "GPX"),
    ("originator.institution.name", "x" * 41),
    ("purchaseAmount.currency", "ZAR"),  # numeric ISO 4217
    ("purchaseAmount.amount", "10.50"),  # minor units: integers only
    ("purchaseAmount.amount", "-5"),
    ("purchaseAmount.amount", True),
    ("purchaseAmount.amount", 10.5),
    ("meter.meterId", "1234-5678"),
    ("meter.meterId", "1" * 21),
    ("meter.supplyGroupCode", "12345"),
    ("meter.keyRevisionNum", "12"),
    ("msisdn", "+0123"),
    ("time", "2020-11-20 09:15:30"),
    ("time", "2020-02-30T09:15:30Z"),
    ("time", 1605863730),
    ("id", ...),
    ("originator", ...),
    ("client", ...),
    ("thirdPartyIdentifiers", ...),
    ("meter", ...),
    ("purchaseAmount", ...),
    ("tenders.0.tenderType", "BITCOIN"),
    ("tenders.0.cardNumber", "12345"),
    ("tranType", "SOMETHING"),
])
def test_purchase_request_rules(path: str, value: Any) -> None:
    locs = errors_of(m.PurchaseRequest, with_(path, value))
    assert any(loc == path or loc.startswith(path + ".") for loc in locs), locs


@pytest.mark.parametrize(("path", "value"), [
    ("purchaseAmount.amount", "10000"),  # a string of digits: Jackson's lenient binding
    ("msisdn", "0821234567"),  # local form
    ("msisdn", "+27821234567"),
    ("time", "2020-11-20T11:15:30.123456789+02:00"),
    ("time", "2020-11-20t09:15:30z"),
    ("meter.meterId", ""),  # the pattern admits it; the service says unknown meter
    ("unknownField", {"any": "thing"}),  # ignored: Electrum keeps adding optional fields
    ("originator.channelId", "web"),
])
def test_purchase_request_accepts(path: str, value: Any) -> None:
    req = m.PurchaseRequest.model_validate(with_(path, value))
    if path == "purchaseAmount.amount":
        assert req.purchase_amount.amount == 10000
        assert req.dump()["purchaseAmount"]["amount"] == 10000  # always a number out
    if path == "time":
        assert req.time == value  # kept as received, for the echo


def test_fault_types_both_spellings() -> None:
    body = {**{k: v for k, v in PURCHASE_REQUEST.items() if k not in ("purchaseAmount",)},
            "contactNumber": "0821234567", "faultType": "KeepsTripping"}
    assert m.FaultReportRequest.model_validate(body).dump()["faultType"] == "KeepsTripping"
    body["faultType"] = "KEEPS_TRIPPING"
    assert m.FaultReportRequest.model_validate(body).fault_type == "KEEPS_TRIPPING"
    assert m.fault_constant("KeepsTripping") == "KEEPS_TRIPPING"
    body["faultType"] = "Broken"
    assert "faultType" in errors_of(m.FaultReportRequest, body)
    body["faultType"], body["faultDescription"] = "NoTrip", "x" * 161
    assert "faultDescription" in errors_of(m.FaultReportRequest, body)


def test_error_detail_message_limit_and_enums() -> None:
    assert "errorMessage" in errors_of(m.ErrorDetail, {**ERROR, "errorMessage": "x" * 21})
    assert "errorType" in errors_of(m.ErrorDetail, {**ERROR, "errorType": "NOPE"})
    assert len(m.ErrorType) == 26 and len(m.RequestType) == 10 and len(m.TokenType) == 5


def test_advice_rules() -> None:
    assert "reversalReason" in errors_of(m.ReversalAdvice, CONFIRMATION)
    assert "reversalReason" in errors_of(m.ReversalAdvice,
                                         {**CONFIRMATION, "reversalReason": "LATE"})
    assert "requestId" in errors_of(m.ConfirmationAdvice, with_("requestId", ..., CONFIRMATION))


def test_decimals_go_out_as_numbers() -> None:
    tok = m.Token.model_validate({"tokenType": "BSST", "units": "50", "token": "0" * 20,
                                  "amount": {"amount": 0, "currency": "710"}})
    out = tok.dump()
    assert out["units"] == 50 and isinstance(out["units"], int)
    assert json.dumps(m.TariffBlock.model_validate({"units": "1.5", "rate": 250}).dump()) == \
        '{"units": 1.5, "rate": 250}'
