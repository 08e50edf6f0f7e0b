"""XMLVend response trees from the service's answers (digest §4, §6).

Nothing here decides anything: amounts, units, tokens, limits and texts all come from the use
case's answer; this module only places them where XMLVend puts them.  Money follows the
receipt: a credit vend's `amt` is the energy net of tax with its VAT as a `tax`, the fixed
charge is a ServiceChrgTx (net, with its VAT), debt recovery a DebtRecoveryTx with the
balance left, so the transactions and their tax add up to `lessRound` = `tenderAmt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sts.codec.pan import parse_pan
from sts.xmlvend.reader import Header
from sts.xmlvend.tree import BASE, CONLOG_EXT, METER, REVENUE, E, Embed

ZEROS = "0" * 20  # the token of a trial (Centlec sends 20 zeros)
EN_DASH = "\u2013"
_UNITS = {"electricity": "kWh", "water": "kl", "gas": "m3", "time": "min"}


@dataclass(frozen=True)
class Ctx:
    """What every response of one request shares."""

    profile: str
    header: Header
    server_ean: str
    msno: str | None = None  # the meter number as the client wrote it


def stamp(at: datetime, profile: str) -> str:
    """xs:dateTime with an offset, in the profile's precision (Hexing .000, .NET 7 digits)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=datetime.now().astimezone().tzinfo)
    base = at.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f".{at.microsecond:06d}0" if profile == "conlog" else f".{at.microsecond // 1000:03d}"
    off = at.strftime("%z")
    return f"{base}{frac}{off[:3]}:{off[3:]}"


def money(value: Decimal | str) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01'))}"


def currency(ns: str, name: str, value: Decimal | str, symbol: str) -> E:
    return E(ns, name, [("value", money(value)), ("symbol", symbol)])


def device(ns: str, name: str, kind: str, value: str) -> E:
    return E(ns, name, [("ean" if kind == "EANDeviceID" else "id", value)],
             xsi_type=(BASE, kind))


def msg_id(name: str, date_time: str, number: str) -> E:
    return E(BASE, name, [("dateTime", date_time), ("uniqueNumber", number)])


def base_resp(ctx: Ctx, ns: str, name: str, at: datetime, *, xsi_type: tuple[str, str] |
              None = None, disp: str | None = None, operator: str | None = None,
              customer: str | None = None) -> E:
    """The root with the b:BaseResp header: echoes of the request, our server id, the time."""
    h = ctx.header
    server = (device(BASE, "serverID", "GenericDeviceID", "1") if ctx.profile == "conlog"
              else device(BASE, "serverID", "EANDeviceID", ctx.server_ean))
    root = E(ns, name, xsi_type=xsi_type).add(
        device(BASE, "clientID", h.client.kind, h.client.value), server,
        device(BASE, "terminalID", h.terminal.kind, h.terminal.value),
        msg_id("reqMsgID", h.msg.date_time, h.msg.number),
        E(BASE, "respDateTime", text=stamp(at, ctx.profile)))
    if disp is not None:
        root.add(E(BASE, "dispHeader", text=disp))
    if ctx.profile == "conlog" and operator is not None:
        root.add(E(BASE, "operatorMsg", text=operator), E(BASE, "custMsg", text=customer or ""))
    return root


def cust_vend_detail(ns: str, customer: dict[str, Any] | None, days: int | None, *,
                     profile: str = "hexing") -> E:
    c = customer or {}
    attrs = [("name", str(c.get("name", ""))), ("address", str(c.get("address", ""))),
             ("contactNo", str(c.get("phone", ""))), ("accNo", str(c.get("account_no", ""))),
             ("locRef", "")]
    if profile == "conlog":
        attrs.append(("utilityType", "Electricity"))  # Conlog extension
    attrs.append(("daysLastPurchase", str(days if days is not None else 0)))
    return E(ns, "custVendDetail", attrs)


def vend_parts(root: E, *, avail: Decimal, symbol: str, utility: dict[str, Any],
               vendor: dict[str, Any] | None, customer: dict[str, Any] | None,
               days: int | None, profile: str = "hexing") -> None:
    """b:BaseVendResp: clientStatus, utility, vendor, custVendDetail.  Conlog clients get a
    batchStatus too (this server keeps no batches: all open)."""
    status = E(BASE, "clientStatus").add(currency(BASE, "availCredit", avail, symbol))
    if profile == "conlog":
        status.add(E(BASE, "batchStatus", [("banking", "open"), ("sales", "open"),
                                           ("shift", "open")]))
    root.add(status,
             E(BASE, "utility", [("name", str(utility.get("name", ""))),
                                 ("address", str(utility.get("address", ""))),
                                 ("taxRef", str(utility.get("vat_reg_num", "")))]))
    if vendor:
        root.add(E(BASE, "vendor", [("name", str(vendor.get("name", ""))),
                                    ("address", str(vendor.get("address", "")))]))
    root.add(cust_vend_detail(BASE, customer, days, profile=profile))


@dataclass(frozen=True)
class Limits:
    """A meter's vend limits in money (from the tariff) for Hexing's meterDetail children."""

    min_amount: Decimal
    max_amount: Decimal | None


def meter_detail(ctx: Ctx, ns: str, meter: dict[str, Any], limits: Limits | None, *,
                 name: str = "meterDetail", key: dict[str, Any] | None = None) -> E:
    """b:MeterDetail of a meter (`key`: another SGC/KRN/TI than the meter's, e.g. a key change's
    from-key).  Hexing adds min/max vend amounts inside it: whole numbers, the minimum rounded
    up and the maximum down, so a client that reads them as integers stays within the
    tariff's limits."""
    k = key or meter
    msno = ctx.msno or parse_pan(meter["pan"]).drn
    el = E(ns, name, [("msno", msno), ("sgc", str(k["sgc"])), ("krn", str(k["krn"])),
                      ("ti", f"{int(k['ti']):02d}")])
    if ctx.profile == "conlog":  # Conlog extension
        el.attrs.append(("unitOfMeasurement", _UNITS.get(str(meter.get("service")), "kWh")))
    meter_type = [("at", f"{int(meter.get('ea', 7)):02d}"), ("tt", "02")]
    el.add(E(BASE, "meterType", meter_type))
    if ctx.profile == "hexing":
        lo = str(math.ceil(limits.min_amount)) if limits else "0"
        hi = (str(math.floor(limits.max_amount)) if limits and limits.max_amount is not None
              else "0")
        el.add(E(BASE, "maxVendAmt", text=hi), E(BASE, "minVendAmt", text=lo),
               E(BASE, "maxVendEng", text="0"), E(BASE, "minVendEng", text="0"))
    return el


def sts_token(name: str, cipher: str | None, *, typed: bool = True) -> E:
    el = E(BASE, name, xsi_type=(BASE, "STS1Token") if typed else None)
    return el.add(E(BASE, "stsCipher", text=cipher or ZEROS))


def credit_issue(ctx: Ctx, kind: str, meter: dict[str, Any], limits: Limits | None,
                 token: dict[str, Any], unit: str) -> E:
    desc = kind if ctx.profile == "hexing" else {
        "SaleCredTokenIssue": "Credit Token", "FBECredTokenIssue": "FBE Token",
        "FreeCredTokenIssue": "Free Token"}[kind]
    return E(REVENUE, "creditTokenIssue", xsi_type=(BASE, kind)).add(
        E(BASE, "desc", text=desc), meter_detail(ctx, BASE, meter, limits),
        sts_token("token", token.get("token")),
        E(BASE, "units", [("value", str(token.get("units", "0"))), ("siUnit", unit)]),
        E(BASE, "resource", xsi_type=(BASE, "Electricity")))


def kc_issues(ctx: Ctx, ns: str, name: str, meter: dict[str, Any], kcts: list[dict[str, Any]],
              key_change: dict[str, Any]) -> list[E]:
    """KCTokenIssue(s) of a key change: tokens 1 and 2 (a 128-bit key's tokens 3 and 4 follow
    in a second issue, the documented deviation).  Its meterDetail shows the from-key."""
    frm, to = key_change["from"], key_change["to"]
    out = []
    for i in range(0, len(kcts), 2):
        pair = kcts[i:i + 2]
        token = E(BASE, "token", xsi_type=(BASE, "KCToken")).add(
            sts_token("set1stMeterKey", pair[0].get("token"), typed=False),
            sts_token("set2ndMeterKey", pair[-1].get("token"), typed=False))
        out.append(E(ns, name).add(
            E(BASE, "desc", text="KCTokenIssue" if ctx.profile == "hexing"
              else "Key Change Token"),
            meter_detail(ctx, BASE, meter, None, key=frm), token,
            E(BASE, "kctData", [("fromSGC", str(frm["sgc"])), ("fromKRN", str(frm["krn"])),
                                ("fromTI", f"{int(frm['ti']):02d}"), ("toSGC", str(to["sgc"])),
                                ("toKRN", str(to["krn"])), ("toTI", f"{int(to['ti']):02d}")])))
    return out


def tariff(r: dict[str, Any]) -> E:
    t = r.get("tariff") or {}
    el = E(REVENUE, "tariff").add(E(BASE, "name", text=str(t.get("name") or "-")))
    if t.get("description"):
        el.add(E(BASE, "desc", text=str(t["description"])))
    return el


def tariff_breakdown(r: dict[str, Any], symbol: str, unit: str) -> E:
    """Conlog's StepTariffBreakdown: the units bought in each price block and its rate."""
    steps = E(CONLOG_EXT, "steps")
    for s in r.get("steps", []):
        units = Decimal(str(s["units"])).quantize(Decimal("0.1"))
        steps.add(E(CONLOG_EXT, "Step").add(
            E(CONLOG_EXT, "units", [("value", str(units)), ("siUnit", unit)]),
            E(CONLOG_EXT, "rate", [("value", str(s["price"])), ("symbol", symbol)])))
    return E(REVENUE, "tariffBreakdown", xsi_type=(CONLOG_EXT, "StepTariffBreakdown")).add(steps)


def vat(ns: str, rate: str, amount: Decimal, symbol: str) -> E:
    return E(ns, "tax", [("rate", f"{Decimal(rate):.4f}")], xsi_type=(BASE, "VAT")).add(
        currency(BASE, "amt", amount, symbol))


def transactions(ctx: Ctx, sale: dict[str, Any], symbol: str, limits: Limits | None, *,
                 trial: bool = False) -> E:
    """r:Transactions of a sale's answer: the credit tx (with any key change), free units,
    the fixed charge and debt recovery, then lessRound/tenderAmt/change."""
    r = sale["receipt"]
    meter = r["meter"]
    unit = r.get("unit", "kWh")
    receipt_no = r.get("receipt_no") or ("0" * 10)
    toks = sale.get("tokens", [])
    kcts = [t for t in toks if t.get("kind") == "KCT"]
    credit = [t for t in toks if t.get("kind") == "STD"]
    free = [t for t in toks if t.get("kind") == "FBE"]
    energy_vat = Decimal(r["energy_amount"]) - Decimal(r["energy_net"])
    txs = E(REVENUE, "transactions")
    first = True

    def credit_tx(kind: str, token: dict[str, Any], amt: Decimal, tax: Decimal | None) -> E:
        nonlocal first
        tx = E(REVENUE, "tx", [("receiptNo", receipt_no)], xsi_type=(REVENUE, "CreditVendTx"))
        tx.add(currency(REVENUE, "amt", amt, symbol))
        if tax is not None and Decimal(r["vat"]["rate"]) > 0:
            tx.add(vat(REVENUE, r["vat"]["rate"], tax, symbol))
        tx.add(credit_issue(ctx, kind, meter, limits, token, unit))
        if first and kcts and r.get("key_change"):
            tx.add(*kc_issues(ctx, REVENUE, "kcTokenIssue", meter, kcts, r["key_change"]))
        first = False
        tx.add(tariff(r))
        if ctx.profile == "conlog" and kind == "SaleCredTokenIssue" and r.get("steps"):
            tx.add(tariff_breakdown(r, symbol, unit))
        return tx

    for t in credit:
        txs.add(credit_tx("SaleCredTokenIssue", t, Decimal(r["energy_net"]), energy_vat))
    for t in free:
        txs.add(credit_tx("FBECredTokenIssue", t, Decimal(0), None))
    account = str((r.get("customer") or {}).get("account_no", ""))
    fixed_vat = Decimal(r["vat"]["amount"]) - energy_vat
    for c in r.get("charges", []):
        tx = E(REVENUE, "tx", xsi_type=(REVENUE, "ServiceChrgTx")).add(
            currency(REVENUE, "amt", Decimal(c["amount"]) - fixed_vat, symbol))
        if fixed_vat > 0:
            tx.add(vat(REVENUE, r["vat"]["rate"], fixed_vat, symbol))
        txs.add(tx.add(E(REVENUE, "accDesc", text=str(c["description"])),
                       E(REVENUE, "accNo", text=account), tariff(r)))
    for d in r.get("debt", []):
        txs.add(E(REVENUE, "tx", xsi_type=(REVENUE, "DebtRecoveryTx")).add(
            currency(REVENUE, "amt", d["amount"], symbol),
            E(REVENUE, "accDesc", text=str(d["description"])), E(REVENUE, "accNo", text=account),
            tariff(r), currency(REVENUE, "balance", d["balance"], symbol)))
    total = Decimal(r.get("amount", "0"))
    txs.add(currency(REVENUE, "lessRound", total, symbol),
            currency(REVENUE, "tenderAmt", total, symbol),
            currency(REVENUE, "change", Decimal(0), symbol))
    del trial
    return txs


def receipt(ctx: Ctx, sale: dict[str, Any], symbol: str, limits: Limits | None) -> E:
    """r:CreditVendReceipt (Conlog clients also get its MonthlyTotals extension, nil)."""
    r = sale["receipt"]
    el = E(REVENUE, "creditVendReceipt", [("receiptNo", r.get("receipt_no") or "0" * 10)])
    el.add(transactions(ctx, sale, symbol, limits))
    if ctx.profile == "conlog":
        el.add(E(REVENUE, "MonthlyTotals", nil=True))
    return el


def embed(ns: str, name: str, stored: str, resp_type: str) -> Embed:
    ns_name, _, type_name = resp_type.partition(":")
    return Embed(ns, name, stored, (_NS[ns_name], type_name))


_NS = {"base": BASE, "revenue": REVENUE, "meter": METER}


def type_name(ns: str, name: str) -> str:
    """The stored form of a response's type: "revenue:CreditVendResp"."""
    return f"{ {BASE: 'base', REVENUE: 'revenue', METER: 'meter'}[ns]}:{name}"


DISP_VEND = f"CREDIT VEND {EN_DASH} TAX INVOICE"
