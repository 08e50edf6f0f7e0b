"""The XMLVend use cases (digest §5), each a translation onto one use case of the vending
service: read the request, call the service, build the answer.  No rule lives here.

Every handler gets a `Call` (the service, the authenticated operator, the request) and returns
an `Outcome` (the answer's tree and its type), or raises: an `sts.errors` refusal (mapped once
by `faults.classify`) or an `XMLVendFault`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from lxml import etree
from sqlalchemy import Connection

from sts.errors import NoKeyChangeDue, StsError, UnknownMeter, UnknownRecord
from sts.vending.access import vend_clients
from sts.vending.access.policy import vendor_filter
from sts.vending.access.vend_clients import ClientCaller
from sts.vending.clock import local
from sts.vending.registry import catalogue
from sts.vending.service import VendingService
from sts.xmlvend import build, reader
from sts.xmlvend.build import Ctx, Limits
from sts.xmlvend.faults import XMLVendFault, schema_fault, unsupported
from sts.xmlvend.reader import AccountRef, Header, MeterRef
from sts.xmlvend.tree import BASE, METER, REVENUE, E


@dataclass
class Call:
    svc: VendingService
    who: ClientCaller
    header: Header
    payload: etree._Element
    server_ean: str
    request_id: str  # the service request id of this msgID
    identity: dict[str, Any] = field(default_factory=dict)  # what makes the request itself
    conn: Connection | None = None  # the face's own autocommit connection

    def ctx(self, msno: str | None = None) -> Ctx:
        return Ctx(self.who.profile, self.header, self.server_ean, msno)

    @property
    def root(self) -> str:
        return reader.local(self.payload)


@dataclass
class Outcome:
    root: E
    resp_type: str  # "revenue:CreditVendResp"


# --- shared ------------------------------------------------------------------------------------


def now_utc(svc: VendingService) -> datetime:
    """The service clock as an aware UTC time (answers that concern no meter)."""
    return local(svc.now(), "UTC")


def now_local(call: Call) -> datetime:
    return now_utc(call.svc)


def limits_of(call: Call, tariff: str) -> Limits | None:
    if call.who.profile != "hexing":
        return None
    low, high = vend_clients.tariff_limits(call.svc.db, tariff)
    return Limits(low, high)


def symbol_of(utility: dict[str, Any]) -> str:
    return str(utility.get("currency") or "ZAR")


def vend_response(call: Call, ctx: Ctx, root_name: str, type_name: str, sale: dict[str, Any],
                  *, disp: str = build.DISP_VEND, operator: str = "Credit Purchase successful",
                  customer: str = "Credit Purchase") -> Outcome:
    """A CreditVendResp (or its subtypes) for a sale's answer; the time is the sale's."""
    r = sale["receipt"]
    at = datetime.fromisoformat(r["date"])
    symbol = symbol_of(r["utility"])
    root = build.base_resp(ctx, REVENUE, root_name, at, disp=disp, operator=operator,
                           customer=customer)
    avail, days = vend_clients.sale_context(call.svc.db, call.who.caller.vendor_id,
                                            r["meter"]["pan"], at,
                                            before_receipt=r.get("receipt_no") or None,
                                            conn=call.conn)
    build.vend_parts(root, avail=avail, symbol=symbol, utility=r["utility"],
                     vendor=r.get("vendor"), customer=r.get("customer"), days=days,
                     profile=call.who.profile)
    root.add(build.receipt(ctx, sale, symbol, limits_of(call, r["tariff"]["name"])))
    return Outcome(root, build.type_name(REVENUE, type_name))


def sale_body(call: Call, meter: MeterRef, amount: str) -> dict[str, Any]:
    h = call.header.msg
    return {"meter": meter.pan, "amount": amount,
            "reference": f"xmlvend {call.who.client_id} {h.date_time}/{h.number}"[:64]}


# --- login (Hexing extension) ------------------------------------------------------------------


def login(call: Call) -> Outcome:
    who = call.who
    low, high = vend_clients.vend_limits(call.svc.db)
    avail = vend_clients.vendor_float(call.svc.db, who.caller.vendor_id)
    tid = call.header.terminal.value
    root = E(REVENUE, "user").add(
        E(REVENUE, "ID", text=str(who.operator_id)),
        E(REVENUE, "TID", text=str(int(tid)) if tid.isdigit() and len(tid) < 10
          else str(who.client_row)),
        E(REVENUE, "CDUID", text=str(who.caller.vendor_id or 0)),
        E(REVENUE, "CDUName", text=who.vendor_name),
        E(REVENUE, "CDUBalance", text=build.money(avail)),
        E(REVENUE, "MinVendAmt", text=str(int(-(-low // 1)))),
        E(REVENUE, "MaxVendAmt", text=str(int(high // 1)) if high is not None else "0"),
        E(REVENUE, "LoginTime", text=build.stamp(now_local(call), "hexing")))
    return Outcome(root, build.type_name(REVENUE, "LoginUser"))


# --- confirm customer / confirm meter -----------------------------------------------------------


def _lookups(call: Call, ref: MeterRef | AccountRef) -> list[dict[str, Any]]:
    caller = call.who.caller
    if isinstance(ref, MeterRef):
        return [call.svc.lookup(ref.pan, caller)]
    found = [m for m in catalogue.search_meters(call.svc.db, ref.account_no, limit=20)
             if m.get("account_no") == ref.account_no]
    if not found:
        raise XMLVendFault("ConfirmCustomerEx", f"no customer with account {ref.account_no}")
    return [call.svc.lookup(m["pan"], caller) for m in found[:10]]


def confirm_customer(call: Call) -> Outcome:
    root_name = call.root
    ref = reader.id_method(reader.child(call.payload, "idMethod", root_name),
                           f"{root_name}/idMethod")
    try:
        looks = _lookups(call, ref)
    except UnknownMeter as exc:
        raise XMLVendFault("UnknownMeterEx", f"Meter information not found on server: "
                           f"{exc.message}", code="VD.01010004") from None
    ctx = call.ctx(ref.msno if isinstance(ref, MeterRef) else None)
    at = now_local(call)
    root = build.base_resp(ctx, REVENUE, "confirmCustomerResp", at, disp="Confirm Customer",
                           operator="Customer confirmed", customer="")
    for look in looks:
        symbol = symbol_of(look["utility"])
        days = vend_clients.days_since_sale(call.svc.db, look["meter"]["pan"], at)
        config = E(REVENUE, "custVendConfig").add(
            E(REVENUE, "canVend", text="true" if look["can_vend"] else "false"),
            E(REVENUE, "fbeDue", text="true" if Decimal(look["free_units_due"]) > 0
              else "false"))
        if look.get("max_amount") is not None:
            config.add(build.currency(REVENUE, "maxVendAmt", look["max_amount"], symbol))
        config.add(build.currency(REVENUE, "minVendAmt", look["min_amount"], symbol))
        limits = Limits(Decimal(look["min_amount"]), Decimal(look["max_amount"])
                        if look.get("max_amount") is not None else None)
        root.add(E(REVENUE, "confirmCustResult").add(
            build.cust_vend_detail(REVENUE, look.get("customer"), days,
                                   profile=call.who.profile), config,
            build.meter_detail(ctx if len(looks) == 1 else call.ctx(), REVENUE, look["meter"],
                               limits)))
    return Outcome(root, build.type_name(REVENUE, "ConfirmCustomerResp"))


def confirm_meter(call: Call) -> Outcome:
    ref = reader.id_method(reader.child(call.payload, "idMethod", call.root),
                           f"{call.root}/idMethod")
    if not isinstance(ref, MeterRef):
        raise schema_fault(f"{call.root}/idMethod", "confirm meter names the meter")
    try:
        look = call.svc.lookup(ref.pan, call.who.caller)
    except UnknownMeter as exc:
        raise XMLVendFault("UnknownMeterEx", f"Meter information not found on server: "
                           f"{exc.message}", code="VD.01010004") from None
    ctx = call.ctx(ref.msno)
    limits = Limits(Decimal(look["min_amount"]), Decimal(look["max_amount"])
                    if look.get("max_amount") is not None else None)
    root = build.base_resp(ctx, METER, "confirmMeterResp", now_local(call),
                           disp="Confirm Meter Details", operator="Meter confirmed",
                           customer="")
    root.add(E(METER, "confirmMeterResult").add(
        build.meter_detail(ctx, METER, look["meter"], limits)))
    return Outcome(root, build.type_name(METER, "ConfirmMeterResp"))


# --- credit vend, trial, free basic electricity ------------------------------------------------


def read_vend(call: Call) -> tuple[MeterRef, str]:
    meter = reader.vend_meter(call.payload)
    reader.resource(call.payload)
    amount = reader.amount(call.payload)
    call.identity = {"meter": meter.pan, "amount": amount}
    return meter, amount


def credit_vend(call: Call) -> Outcome:
    meter, amount = read_vend(call)
    halt("before_sale")
    sale, _created = call.svc.purchase(call.request_id, sale_body(call, meter, amount),
                                       call.who.caller)
    halt("after_sale")
    return vend_response(call, call.ctx(meter.msno), "creditVendResp", "CreditVendResp", sale)


def credit_vend_again(call: Call, request: dict[str, Any]) -> Outcome | None:
    """The original answer of a credit vend (or FBE claim) whose sale exists, rebuilt from the
    stored sale (after a crash between the sale and its answer); None if no sale exists."""
    try:
        sale = call.svc.get_purchase(call.request_id, call.who.caller)
    except UnknownRecord:
        return None
    ctx = Ctx(call.who.profile, header_from(request["header"]), call.server_ean,
              request.get("msno"))
    if request.get("kind") == "fbeReq":
        return vend_response(call, ctx, "fbeResp", "FBEResp", sale,
                             disp="FREE BASIC ELECTRICITY", operator="FBE issued")
    return vend_response(call, ctx, "creditVendResp", "CreditVendResp", sale)


def trial_vend(call: Call) -> Outcome:
    meter, amount = read_vend(call)
    trial = call.svc.trial({"meter": meter.pan, "amount": amount}, call.who.caller)
    trial["receipt"]["date"] = now_local(call).isoformat()
    for t in trial["tokens"]:
        t["token"] = None  # a trial's tokens carry no value: 20 zeros
    return vend_response(call, call.ctx(meter.msno), "trialCreditVendResp",
                         "TrialCreditVendResp", trial, disp="TRIAL CREDIT VEND",
                         operator="Trial credit vend", customer="Trial - not a token")


def fbe(call: Call) -> Outcome:
    meter = reader.vend_meter(call.payload)
    reader.resource(call.payload)
    call.identity = {"meter": meter.pan}
    sale, _created = call.svc.claim_free_units(call.request_id, meter.pan, call.who.caller)
    halt("after_sale")
    return vend_response(call, call.ctx(meter.msno), "fbeResp", "FBEResp", sale,
                         disp="FREE BASIC ELECTRICITY", operator="FBE issued")


# --- reprint ------------------------------------------------------------------------------------

_MONTHS = re.compile(r"^R(\d{6})(?:,(\d{6}))?$")
REPRINT_MAX = 10


def reprint(call: Call, stored_of: Callable[[str], tuple[str, str] | None]) -> Outcome:
    """The meter's last sale; with Hexing's terminal id `R202003,202004`, its sales of those
    months (each reprinted by its receipt number).  A sale made through XMLVend reprints as the
    stored original answer; another (a /v1 or web sale) is built from the service's reprint."""
    ref = reader.id_method(reader.child(call.payload, "idMethod", call.root),
                           f"{call.root}/idMethod")
    if not isinstance(ref, MeterRef):
        raise unsupported("reprint by customer")
    caller = call.who.caller
    months = _MONTHS.match(call.header.terminal.value)
    answers: list[dict[str, Any]] = []
    try:
        if months is None:
            answers.append(call.svc.reprint({"meter": ref.pan}, caller))
        else:
            first, last = months.group(1), months.group(2) or months.group(1)
            scope = vendor_filter(caller.vendor_scope())
            for s in catalogue.sales_of_meter(call.svc.db, ref.pan, limit=200, vendor_id=scope):
                month = f"{s['created_at']:%Y%m}"
                if first <= month <= last and len(answers) < REPRINT_MAX:
                    answers.append(call.svc.reprint({"receipt_no": s["receipt_no"]}, caller))
    except UnknownRecord:
        answers = [a for a in answers if a]
    if not answers:
        raise XMLVendFault("ReprintEx", "No transactions found for Reprint")
    ctx = call.ctx(ref.msno)
    root = build.base_resp(ctx, REVENUE, "reprintResp", now_local(call), disp="REPRINT",
                           operator="Reprint", customer="")
    for a in reversed(answers):  # oldest first
        stored = stored_of(a["purchase_id"]) if a.get("status") != "reversed" else None
        if stored is not None:
            root.add(build.embed(REVENUE, "reprint", stored[0], stored[1]))
            continue
        out = vend_response(call, ctx, "reprint", "CreditVendResp", a, disp="REPRINT")
        out.root.xsi_type = (REVENUE, "CreditVendResp")
        root.add(out.root)
    return Outcome(root, build.type_name(REVENUE, "ReprintResp"))


# --- engineering tokens and key changes --------------------------------------------------------

ENGINEERING = {  # request xsi:type -> (service type, response type, element, token issue type)
    "ClearCreditReq": ("clear_credit", "ClearCreditResp", "clearCredit", "ClearCreditTokenIssue"),
    "ClearTamperReq": ("clear_tamper", "ClearTamperResp", "clearTamper", "ClearTamperTokenIssue"),
    "PwrLmtReq": ("power_limit", "PwrLmtResp", "pwrLmtToken", "PwrLmtTokenIssue"),
    "PhUnbalReq": ("phase_unbalance", "PhUnbalResp", "phUnbalance", "PhUnbalTokenIssue"),
    "EngKCTReq": ("key_change", "EngKCTResp", "engKCToken", "KCTokenIssue"),
}


def _eng_frame(call: Call, ctx: Ctx, pan: str, type_name: str, at: datetime,
               root_name: str = "meterSpecificEngResp") -> E:
    """A meter-specific answer's BaseVendResp part (utility and customer from a lookup)."""
    look = call.svc.lookup(pan, call.who.caller)
    root = build.base_resp(ctx, METER, root_name, at,
                           xsi_type=(METER, type_name) if root_name == "meterSpecificEngResp"
                           else None, disp="ENGINEERING TOKEN", operator="Token issued",
                           customer="")
    build.vend_parts(root, avail=vend_clients.vendor_float(call.svc.db, call.who.caller.vendor_id),
                     symbol=symbol_of(look["utility"]), utility=look["utility"], vendor=None,
                     customer=look.get("customer"), days=None, profile=call.who.profile)
    return root


def meter_specific(call: Call) -> Outcome:
    kind = reader.xsi_type(call.payload) or ""
    if kind not in ENGINEERING:
        raise unsupported(f"meter-specific engineering request {kind[:40] or '(no xsi:type)'}")
    service_type, resp_type, element, issue_type = ENGINEERING[kind]
    meter = reader.vend_meter(call.payload)
    h = call.header.msg
    body: dict[str, Any] = {
        "meter": meter.pan, "type": service_type,
        "reason": f"XMLVend {kind} by {call.who.client_id}/{call.who.op_name} "
                  f"msgID {h.date_time}/{h.number}"[:300]}
    watts = None
    if kind in ("PwrLmtReq", "PhUnbalReq"):
        watts = reader.power_limit_watts(call.payload)
        body["watts"] = watts
    if kind == "EngKCTReq":
        kct = reader.kct_data(call.payload)
        body |= {"to_krn": kct.to_krn, "to_ti": kct.to_ti}
        call.identity = {"meter": meter.pan, "type": service_type, "kct": [kct.to_sgc,
                                                                          kct.to_krn, kct.to_ti]}
    else:
        call.identity = {"meter": meter.pan, "type": service_type, "watts": watts}
    out, _created = call.svc.engineering(call.request_id, body, call.who.caller)
    ctx = call.ctx(meter.msno)
    at = datetime.fromisoformat(out["date"])
    root = _eng_frame(call, ctx, meter.pan, resp_type, at)
    tokens = out["tokens"]
    if kind == "EngKCTReq":
        frm = {k: out["meter"][k] for k in ("sgc", "krn", "ti")}
        root.add(*build.kc_issues(ctx, METER, element, out["meter"], tokens,
                                  {"from": frm, "to": out["key_change"]["to"]}))
    else:
        issue = E(METER, element, xsi_type=None).add(
            E(BASE, "desc", text=issue_type), build.meter_detail(ctx, BASE, out["meter"], None),
            build.sts_token("token", tokens[0]["token"]))
        if watts is not None:
            issue.add(E(BASE, "pwrLmt", [("value", str(watts)), ("siUnit", "W")]))
        root.add(issue)
    return Outcome(root, build.type_name(METER, resp_type))


def update_meter_key(call: Call) -> Outcome:
    ref = reader.id_method(reader.child(call.payload, "idMethod", call.root),
                           f"{call.root}/idMethod")
    if not isinstance(ref, MeterRef):
        raise schema_fault(f"{call.root}/idMethod", "a MeterDetail is required")
    call.identity = {"meter": ref.pan}
    try:
        out, _created = call.svc.key_change_tokens(call.request_id, ref.pan, call.who.caller)
    except UnknownMeter as exc:
        raise XMLVendFault("UnknownMeterUpdateMtrKeyEx", exc.message) from None
    except NoKeyChangeDue as exc:
        raise XMLVendFault("UpdateMtrKeySameEx", f"From same as To: {exc.message}") from None
    ctx = call.ctx(ref.msno)
    root = _eng_frame(call, ctx, ref.pan, "UpdateMeterKeyResp",
                      datetime.fromisoformat(out["date"]), root_name="updateMeterKeyResp")
    frm = {k: out["meter"][k] for k in ("sgc", "krn", "ti")}
    root.add(*build.kc_issues(ctx, METER, "updateMeterKey", out["meter"], out["tokens"],
                              {"from": frm, "to": out["key_change"]["to"]}))
    return Outcome(root, build.type_name(METER, "UpdateMeterKeyResp"))


# --- verify ------------------------------------------------------------------------------------


def verify(call: Call) -> Outcome:
    token = reader.token_text(call.payload)
    meter = reader.vend_meter(call.payload)
    try:
        out = call.svc.verify_token(meter.pan, token, call.who.caller)
    except StsError as exc:
        raise XMLVendFault("VerifyTokenEx", exc.message) from None
    issue = out.get("issue")
    if not out.get("issued") or issue is None or issue.get("transaction") != "sale":
        raise XMLVendFault("VerifyTokenEx", "this token was not issued by a sale of this "
                           "server for this meter")
    try:
        sale = call.svc.reprint({"receipt_no": issue["receipt_no"]}, call.who.caller)
    except UnknownRecord as exc:
        raise XMLVendFault("VerifyTokenEx", exc.message) from None
    ctx = call.ctx(meter.msno)
    at = datetime.fromisoformat(sale["receipt"]["date"])
    r = sale["receipt"]
    symbol = symbol_of(r["utility"])
    root = build.base_resp(ctx, REVENUE, "verifyResp", at, disp="VERIFY TOKEN",
                           operator="Token verified", customer="")
    build.vend_parts(root, avail=vend_clients.vendor_float(call.svc.db,
                                                           call.who.caller.vendor_id),
                     symbol=symbol, utility=r["utility"], vendor=r.get("vendor"),
                     customer=r.get("customer"), days=None, profile=call.who.profile)
    txs = build.transactions(ctx, sale, symbol, limits_of(call, r["tariff"]["name"]))
    credit = next(c for c in txs.children if isinstance(c, E) and c.name == "tx")
    credit.name = "creditVendTx"
    credit.xsi_type = None
    decoded = out.get("decoded") or {}
    token_class = E(BASE, "tokenClass").add(E(BASE, "credit", text="Electricity Token"))
    root.add(credit, E(REVENUE, "tokenInfo", xsi_type=(BASE, "STS1TokenInfo")).add(
        E(BASE, "tokenID", text=str(decoded.get("tid", 0))),
        E(BASE, "transferAmt", text=str(decoded.get("units", "0"))), token_class))
    return Outcome(root, build.type_name(REVENUE, "VerifyResp"))


# --- helpers for the exactly-once frame ---------------------------------------------------------


def header_json(h: Header) -> dict[str, Any]:
    return {"client": [h.client.kind, h.client.value], "terminal": [h.terminal.kind,
                                                                    h.terminal.value],
            "msg": [h.msg.date_time, h.msg.unique, h.msg.number]}


def header_from(data: dict[str, Any]) -> Header:
    return Header(reader.Device(*data["client"]), reader.Device(*data["terminal"]),
                  reader.MsgID(*data["msg"]), None, None, None)


def request_json(call: Call, kind: str, msno: str | None) -> str:
    return json.dumps({"kind": kind, "header": header_json(call.header), "msno": msno,
                       "identity": call.identity}, sort_keys=True, default=str)


# --- a test seam: stop at a point of a sale (crash tests SIGKILL the server there) --------------

def halt(point: str) -> None:
    """Block this request forever at `point` when the environment asks (tests only)."""
    import os
    import threading

    if os.environ.get("STS_XMLVEND_HALT_AT") == point:
        marker = os.environ.get("STS_XMLVEND_HALT_FILE")
        if marker:
            with open(marker, "w") as fh:
                fh.write(point)
        threading.Event().wait()
