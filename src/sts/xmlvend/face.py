"""One XMLVend request, end to end: parse, authenticate, dispatch on the Body's first child
(never on SOAPAction), run the use case exactly once (digest §8), render in the client's
profile, store, answer.

Exactly once, the XMLVend way (`sts.vending.exchanges` holds the states):

* A request is keyed on (client, msgID dateTime as sent, msgID uniqueNumber as a number).  Its
  row is claimed before the use case runs; the use case uses a service request id derived from
  the key, so a repeat, a crash recovery and an advice all reach the same sale.
* The complete answer is stored before it is sent.  A repeated financial request (a sale, an
  engineering token, an advice) answers the stored bytes and issues nothing; the same msgID
  with another request is a BusinessRuleEx.  A repeat that finds its original still running
  runs the same idempotent use case (the service decides between twins by the request id), so
  every twin gets the one sale.
* A last-response advice answers the stored answer inside `lastResponse`, unchanged.  When the
  original's sale exists but its answer was never stored (the server died in between), the
  answer is built from the stored sale, stored, and sent.  When no sale exists: while the
  original may still be running (younger than the lease) the answer is a retryable SystemEx
  (`VD.17020008`); past the lease the msgID is voided first, so the original can never stand
  (a late original reverses its own sale), and only then LastResponseEx.  An unknown msgID is
  voided the same way.
* A reversal advice reverses a sale only while its token has not reached the customer: never
  after a confirmation advice, nor after the answer was sent again (a repeat or a
  last-response advice).  Refused, it answers `txReversed="false"`.  Advices are idempotent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree
from sqlalchemy import Connection

from sts.errors import AdviceConflict, ReversalNotAllowed, StsError, UnknownRecord
from sts.vending import advices, exchanges
from sts.vending.access import vend_clients
from sts.vending.exchanges import Exchange
from sts.vending.ledger import request_hash
from sts.vending.service import VendingService
from sts.xmlvend import build, reader, usecases, wire
from sts.xmlvend.faults import XMLVendFault, classify, customer_text, schema_fault, unsupported
from sts.xmlvend.reader import Header
from sts.xmlvend.tree import BASE, E, render
from sts.xmlvend.usecases import Call, Outcome

log = logging.getLogger("sts.xmlvend")


@dataclass(frozen=True)
class Settings:
    server_ean: str = "0000000000000"
    lease_seconds: float = 60.0  # an original older than this, without a sale, is dead
    cert_header: str | None = None  # header a TLS proxy puts the verified client certificate in
    default_profile: str = "hexing"  # for faults before the client is known


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    soap: str


@dataclass(frozen=True)
class Op:
    kind: str
    financial: bool
    run: Callable[[Call], Outcome] | None  # None: not offered (UseCaseSupportEx)


SALES = ("creditVendReq", "fbeReq")
OPS: dict[str, Op] = {
    "loginReq": Op("loginReq", False, usecases.login),
    "confirmCustomerReq": Op("confirmCustomerReq", False, usecases.confirm_customer),
    "confirmMeterReq": Op("confirmMeterReq", False, usecases.confirm_meter),
    "creditVendReq": Op("creditVendReq", True, usecases.credit_vend),
    "trialCreditVendReq": Op("trialCreditVendReq", False, usecases.trial_vend),
    "fbeReq": Op("fbeReq", True, usecases.fbe),
    "meterSpecificEngReq": Op("meterSpecificEngReq", True, usecases.meter_specific),
    "updateMeterKeyReq": Op("updateMeterKeyReq", True, usecases.update_meter_key),
    "verifyReq": Op("verifyReq", False, usecases.verify),
}
NOT_OFFERED = (
    "freeIssueReq", "cancelVendReq", "payAccReq", "meterCreditTransferReq", "depositReq",
    "reprintDepReq", "vendorStatementReq", "startBatchReq", "endBatchReq", "totalBatchReq",
    "reprintEndBatchReq", "nonMeterSpecificEngReq", "custReportFaultReq", "getMeterBalanceReq",
    "getOrderStatusReq", "sendTokenReq", "confirmNodeReq", "validateCustomer",
    "postYakaPayment", "getTransactionDetails")
ADVICES = {"LastRespAdviceReq": "lastRespAdvice", "ConfirmationAdviceReq": "confirmationAdvice",
           "ReversalAdviceReq": "reversalAdvice"}


class Face:
    def __init__(self, svc: VendingService, settings: Settings) -> None:
        self.svc = svc
        self.settings = settings

    # --- the request -----------------------------------------------------------------------

    def handle(self, body: bytes, content_type: str | None, cert_sha256: str | None) -> Answer:
        soap, profile = wire.SOAP11, self.settings.default_profile
        header: Header | None = None
        try:
            incoming = wire.parse(body, content_type)
            soap = incoming.soap
            payload = incoming.payload
            name = reader.local(payload)
            if reader.namespace(payload) not in reader.XMLVEND[:3]:
                raise schema_fault(name, "not an XMLVend 2.1 request element (its namespace "
                                         "must be an XMLVend 2.1 schema namespace)")
            header = reader.header(payload)
            with exchanges.request_connection(self.svc.db) as conn:  # the face's statements
                who = vend_clients.authenticate(
                    self.svc.db, client_id=header.client.value, op_name=header.op_name,
                    password=header.password, new_password=header.new_password,
                    cert_sha256=cert_sha256, now=self.svc.now(), conn=conn)
                profile = who.profile
                return self._dispatch(soap, payload, header, who, conn)
        except Exception as exc:
            fault = classify(exc)
            if fault.fault_type == "SystemEx" and not isinstance(exc, XMLVendFault | StsError):
                log.error("xmlvend request failed: %s", type(exc).__name__, exc_info=exc)
            if header is not None and profile == self.settings.default_profile:
                profile = self._profile_of(header.client.value)
            return self.fault_answer(fault, header, profile, soap)

    def _profile_of(self, client_id: str) -> str:
        """The profile of a registered client (also a revoked one), for its faults."""
        try:
            known = vend_clients.find_client(self.svc.db, client_id)
        except Exception:  # the database may be what failed: answer in the default profile
            return self.settings.default_profile
        return known.profile if known is not None else self.settings.default_profile

    def _dispatch(self, soap: str, payload: etree._Element, header: Header,
                  who: vend_clients.ClientCaller, conn: Connection | None) -> Answer:
        name = reader.local(payload)
        rid = exchanges.service_request_id(who.client_row, header.msg.date_time,
                                           header.msg.number)
        call = Call(self.svc, who, header, payload, self.settings.server_ean, rid, conn=conn)
        if name == "adviceReq":
            kind = reader.xsi_type(payload)
            if kind not in ADVICES:
                raise unsupported(f"advice {kind or '(no xsi:type)'}")
            reader.advice_msg_id(payload)  # read before anything is claimed
            if kind == "LastRespAdviceReq":
                op = Op("lastRespAdvice", False, self._last_response)
            elif kind == "ConfirmationAdviceReq":
                op = Op("confirmationAdvice", True, self._confirmation)
            else:
                op = Op("reversalAdvice", True, self._reversal)
        elif name == "reprintReq":
            op = Op("reprintReq", False, lambda c: usecases.reprint(c, self._stored_of))
        elif name in OPS:
            op = OPS[name]
        elif name in NOT_OFFERED:
            raise unsupported(f"the {name} use case")
        else:
            raise schema_fault(name, "not a request of XMLVend 2.1")
        assert op.run is not None
        return self._once(call, op, soap)

    # --- exactly once ----------------------------------------------------------------------

    def _once(self, call: Call, op: Op, soap: str) -> Answer:
        run = op.run
        assert run is not None
        # read the request before claiming its msgID: a request that cannot be read holds none
        probe = _Probe(call)
        probe.read(op.kind)
        h, now = call.header, self.svc.now()
        rhash = request_hash({"kind": op.kind, "identity": call.identity})
        created, ex = exchanges.claim(
            self.svc.db, client_row=call.who.client_row, date_time=h.msg.date_time,
            unique=h.msg.number, kind=op.kind, financial=op.financial, request_hash=rhash,
            request_id=call.request_id,
            request=usecases.request_json(call, op.kind, probe.msno), now=now, conn=call.conn)
        store = True
        if not created:
            if ex.kind != op.kind or ex.request_hash != rhash:
                if op.financial or ex.status in ("void", "cancelled"):
                    raise XMLVendFault("BusinessRuleEx", f"msgID {h.msg.date_time}/"
                                       f"{h.msg.number} was already used for another request; "
                                       "a new request needs a new msgID",
                                       code="STS.DuplicateMsgID")
                store = False  # a read-only request reusing a financial msgID: not kept
            elif ex.status in ("done", "failed"):
                exchanges.delivered_again(self.svc.db, ex.id, self.svc.now())
                return self._replay(ex, call.who.profile, soap)
            elif ex.status in ("void", "cancelled"):
                raise XMLVendFault("BusinessRuleEx", f"msgID {h.msg.date_time}/{h.msg.number} "
                                   "was cancelled by a last-response advice; send the request "
                                   "again with a new msgID", code="STS.CancelledMsgID")
            elif ex.status == "reversed":
                raise XMLVendFault("BusinessRuleEx", f"the sale of msgID {h.msg.date_time}/"
                                   f"{h.msg.number} was reversed: its token is cancelled",
                                   code="STS.Reversed")
        try:
            out = run(call)
        except Exception as exc:
            fault = classify(exc)
            if store and not fault.retryable and fault.fault_type != "SystemEx":
                payload = self._fault_payload(fault, call.header, call.who.profile)
                won, row = exchanges.finish(self.svc.db, ex.id, status="failed",
                                            resp_type="base:XMLVendFaultResp", payload=payload,
                                            fault=True, now=self.svc.now())
                if not won and row.status in ("done", "failed") and row.payload:
                    return self._replay(row, call.who.profile, soap)
            raise
        payload = render(out.root, call.who.profile)
        if not store:
            return Answer(200, wire.envelope(payload, profile=call.who.profile, soap=soap), soap)
        won, row = exchanges.finish(self.svc.db, ex.id, status="done", resp_type=out.resp_type,
                                    payload=payload, fault=False, now=self.svc.now(),
                                    conn=call.conn)
        if not won:
            row = self._lost_race(call, op, row)
            return self._replay(row, call.who.profile, soap)
        usecases.halt("after_store")
        return Answer(200, wire.envelope(payload, profile=call.who.profile, soap=soap), soap)

    def _lost_race(self, call: Call, op: Op, row: Exchange) -> Exchange:
        """Our answer came second.  A twin stored it: answer that.  A last-response advice
        voided the msgID meanwhile: cancel it and reverse our own sale, then say so."""
        if row.status == "void":
            won, row = exchanges.cancel(self.svc.db, row.id, self.svc.now())
            if won:
                if op.kind in SALES:
                    self.svc.reverse(call.request_id, "msgID voided by a last-response advice "
                                     "before the sale was answered", call.who.caller,
                                     action="reverse_advice")
                raise XMLVendFault("BusinessRuleEx", "this request was cancelled by a "
                                   "last-response advice while it ran; its sale was reversed",
                                   code="STS.CancelledMsgID")
        if row.status in ("done", "failed", "reversed") and row.payload:
            return row
        raise XMLVendFault("BusinessRuleEx", "this msgID was cancelled by a last-response "
                           "advice", code="STS.CancelledMsgID")

    def _replay(self, ex: Exchange, profile: str, soap: str) -> Answer:
        assert ex.payload is not None
        if ex.fault:
            fault = XMLVendFault("BusinessRuleEx", _stored_desc(ex.payload))
            return Answer(500, wire.fault_envelope(ex.payload, fault, profile=profile,
                                                   soap=soap), soap)
        return Answer(200, wire.envelope(ex.payload, profile=profile, soap=soap), soap)

    def _stored_of(self, request_id: str) -> tuple[str, str] | None:
        ex = exchanges.by_request_id(self.svc.db, request_id)
        if ex is None or ex.status != "done" or not ex.payload or ex.resp_type is None:
            return None
        return ex.payload, ex.resp_type

    # --- advices ---------------------------------------------------------------------------

    def _target(self, call: Call) -> tuple[reader.MsgID, Exchange | None]:
        target = reader.advice_msg_id(call.payload)
        call.identity = {"advised": [target.date_time, target.number]}
        return target, exchanges.get(self.svc.db, call.who.client_row, target.date_time,
                                     target.number)

    def _advice_root(self, call: Call, target: reader.MsgID, type_name: str,
                     *attrs: tuple[str, str], disp: str) -> E:
        ctx = call.ctx()
        root = build.base_resp(ctx, BASE, "adviceResp", usecases.now_local(call),
                               xsi_type=(BASE, type_name), disp=disp, operator=disp,
                               customer="")
        root.attrs.extend(attrs)
        root.add(build.msg_id("adviceReqMsgID", target.date_time, target.number))
        return root

    def _settle(self, call: Call, target: reader.MsgID, ex: Exchange | None) -> Exchange | None:
        """The advised exchange once it is settled: done (its answer stored, built now from
        the sale if the server died before storing it), failed, reversed, or None (void: it
        never happened and now never will).  A running original: a retryable fault."""
        now = self.svc.now()
        if ex is None:
            exchanges.tombstone(self.svc.db, client_row=call.who.client_row,
                                date_time=target.date_time, unique=target.number, now=now)
            return None
        if ex.status != "pending":
            return None if ex.status in ("void", "cancelled") else ex
        adopted = self._adopt(call, ex)
        if adopted is not None:
            return adopted
        if (now - ex.created_at).total_seconds() < self.settings.lease_seconds:
            raise XMLVendFault("SystemEx", f"msgID {target.date_time}/{target.number} is still "
                               "being processed; repeat the advice", code="VD.17020008",
                               retryable=True)
        voided, row = exchanges.void(self.svc.db, ex.id, now)
        if not voided:
            return self._settle(call, target, row)
        adopted = self._adopt(call, row, from_status=("void",))
        return adopted

    def _adopt(self, call: Call, ex: Exchange,
               from_status: tuple[str, ...] = ("pending",)) -> Exchange | None:
        """Store the answer of an original whose sale exists but whose answer does not."""
        if ex.kind not in SALES or ex.request_id is None or not ex.request:
            return None
        twin = Call(call.svc, call.who, call.header, call.payload, call.server_ean,
                    ex.request_id, conn=call.conn)
        out = usecases.credit_vend_again(twin, json.loads(ex.request))
        if out is None:
            return None
        payload = render(out.root, call.who.profile)
        _won, row = exchanges.finish(self.svc.db, ex.id, status="done", resp_type=out.resp_type,
                                     payload=payload, fault=False, now=self.svc.now(),
                                     from_status=from_status)
        if row.status in ("void", "cancelled"):
            return None
        return row

    def _last_response(self, call: Call) -> Outcome:
        target, ex = self._target(call)
        settled = self._settle(call, target, ex)
        if settled is None:
            raise XMLVendFault("LastResponseEx", f"no transaction for msgID "
                               f"{target.date_time}/{target.number}: it was never processed "
                               "and now never will be; buy again with a new msgID")
        if settled.status == "reversed":
            raise XMLVendFault("BusinessRuleEx", f"the sale of msgID {target.date_time}/"
                               f"{target.number} was reversed: its token is cancelled",
                               code="STS.Reversed")
        assert settled.payload is not None and settled.resp_type is not None
        exchanges.delivered_again(self.svc.db, settled.id, self.svc.now())
        root = self._advice_root(call, target, "LastRespAdviceResp",
                                 disp="Last Response Advice")
        root.add(build.embed(BASE, "lastResponse", settled.payload, settled.resp_type))
        return Outcome(root, build.type_name(BASE, "AdviceResp"))

    def _confirmation(self, call: Call) -> Outcome:
        target, ex = self._target(call)
        settled = self._settle(call, target, ex)
        if settled is None or settled.status not in ("done", "reversed") \
                or settled.kind not in SALES or settled.request_id is None:
            raise XMLVendFault("ConfirmationEx", f"no server transaction for msgID "
                               f"{target.date_time}/{target.number}")
        confirmed = "true"
        try:
            self.svc.confirm_sale(settled.request_id, call.request_id, call.who.caller)
        except AdviceConflict:
            confirmed = "false"
        root = self._advice_root(call, target, "ConfirmationAdviceResp",
                                 ("txConfirmed", confirmed), disp="Confirmation Advice")
        return Outcome(root, build.type_name(BASE, "AdviceResp"))

    def _reversal(self, call: Call) -> Outcome:
        target, ex = self._target(call)
        settled = self._settle(call, target, ex)
        if settled is None or settled.status == "failed":
            raise XMLVendFault("ReversalEx", f"no server transaction for msgID "
                               f"{target.date_time}/{target.number}: nothing to reverse")
        if settled.kind not in SALES or settled.request_id is None:
            raise XMLVendFault("ReversalEx", "only a credit vend or FBE issue can be reversed")
        reversed_ = settled.status == "reversed"
        why = ""
        if not reversed_:
            state = advices.state(self.svc.db, settled.request_id)
            if state is not None and state["state"] == "confirmed":
                why = "the sale was confirmed"
            elif settled.deliveries > 0:
                why = "the token was sent to the client again (a repeat or last response)"
        if not reversed_ and not why:
            try:
                self.svc.reverse_advice(settled.request_id, call.request_id,
                                        f"XMLVend reversal advice {call.header.msg.date_time}/"
                                        f"{call.header.msg.number}", call.who.caller)
                exchanges.mark_reversed(self.svc.db, settled.id, self.svc.now())
                reversed_ = True
            except (ReversalNotAllowed, AdviceConflict) as exc:
                why = exc.message
            except UnknownRecord as exc:
                raise XMLVendFault("ReversalEx", exc.message) from None
        root = self._advice_root(call, target, "ReversalAdviceResp",
                                 ("txReversed", "true" if reversed_ else "false"),
                                 disp="Reversal Advice")
        if why:
            root.children = [c for c in root.children
                             if not (isinstance(c, E) and c.name == "operatorMsg")]
            _set_operator(root, f"not reversed: {why}", call.who.profile)
        return Outcome(root, build.type_name(BASE, "AdviceResp"))

    # --- faults ----------------------------------------------------------------------------

    def _fault_payload(self, fault: XMLVendFault, header: Header | None, profile: str) -> str:
        """The xmlvendFaultResp: the full BaseResp header (Eskom's style), the fault with its
        description, and the Hexing faultCode in the Hexing profile."""
        conlog = profile == "conlog"
        ns, name = ("", "XMLVendFaultResp") if conlog else (BASE, "xmlvendFaultResp")
        h = header or Header(reader.Device("GenericDeviceID", "unknown"),
                             reader.Device("GenericDeviceID", "unknown"),
                             reader.MsgID("0", "0", "0"), None, None, None)
        ctx = build.Ctx(profile, h, self.settings.server_ean)
        root = build.base_resp(ctx, BASE, name, usecases.now_utc(self.svc),
                               disp="ONLINE ERROR")
        root.ns = ns
        op = E(BASE, "operatorMsg", text=fault.desc)
        cust = E(BASE, "custMsg", text=customer_text(fault.fault_type))
        root.children = [c for c in root.children
                         if not (isinstance(c, E) and c.name in ("operatorMsg", "custMsg"))]
        root.add(op, cust)
        f = E(BASE, "fault", xsi_type=(BASE, fault.fault_type)).add(
            E(BASE, "desc", text=fault.desc))
        if not conlog:
            f.add(E(BASE, "faultCode", text=fault.code))
        root.add(f)
        return render(root, profile)

    def fault_answer(self, fault: XMLVendFault, header: Header | None, profile: str,
                     soap: str) -> Answer:
        payload = self._fault_payload(fault, header, profile)
        return Answer(500, wire.fault_envelope(payload, fault, profile=profile, soap=soap), soap)


class _Probe:
    """Reads a request's own part before its msgID is claimed (a request that cannot be read
    is a schema fault and claims nothing), and notes the meter number as written."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.msno: str | None = None

    def read(self, kind: str) -> None:
        call = self.call
        if kind in ("creditVendReq", "trialCreditVendReq"):
            meter, _amount = usecases.read_vend(call)
            self.msno = meter.msno
        elif kind == "fbeReq":
            meter = reader.vend_meter(call.payload)
            call.identity = {"meter": meter.pan}
            self.msno = meter.msno
        elif kind in ("confirmCustomerReq", "confirmMeterReq", "reprintReq",
                      "updateMeterKeyReq"):
            ref = reader.id_method(reader.child(call.payload, "idMethod", call.root),
                                   f"{call.root}/idMethod")
            call.identity = {"ref": ref.__dict__}
        elif kind in ("lastRespAdvice", "confirmationAdvice", "reversalAdvice"):
            target = reader.advice_msg_id(call.payload)
            call.identity = {"advised": [target.date_time, target.number]}
        elif kind == "meterSpecificEngReq":
            meter = reader.vend_meter(call.payload)
            self.msno = meter.msno
            extra = {}
            for name in ("pwrLmt", "kctData"):
                el = reader.maybe(call.payload, name)
                if el is not None:
                    extra[name] = sorted(el.attrib.items())
            call.identity = {"meter": meter.pan, "type": reader.xsi_type(call.payload),
                             **extra}


def _stored_desc(payload: str) -> str:
    """The description of a stored fault, for the faultstring of its replay."""
    try:
        root = etree.fromstring(payload.encode(), wire._PARSER)
    except etree.XMLSyntaxError:
        return "fault"
    for el in root.iter():
        if isinstance(el.tag, str) and etree.QName(el).localname == "desc":
            return str(el.text or "fault")
    return "fault"


def _set_operator(root: E, text: str, profile: str) -> None:
    """Put an operator message after dispHeader (Conlog profile only carries one)."""
    if profile != "conlog":
        return
    for i, c in enumerate(root.children):
        if isinstance(c, E) and c.name == "custMsg":
            root.children.insert(i, E(BASE, "operatorMsg", text=text))
            return
