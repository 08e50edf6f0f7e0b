"""Reading XMLVend requests, leniently as real clients write them (digest §3, §4).

Elements are found by local name in any of the three XMLVend namespaces (or none): clients put
`idMethod` in base or revenue, inherit default namespaces, and omit prefixes.  `xsi:type`
values are QNames resolved against the namespaces in scope, falling back to the local part
(`ns1:VendIDMethod`, `q1:MeterNumber`, `EANDeviceID`, .NET's `d3p1:type` alias are all read);
an abstract element without `xsi:type` is read by what it holds.  Whitespace inside empty
elements is ignored.  What cannot be read is an `XMLVendSchemaEx` naming the element.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from sts.errors import StsError
from sts.vending.meters import meter_pan
from sts.xmlvend.faults import XMLVendFault, schema_fault, unsupported
from sts.xmlvend.tree import BASE, METER, REVENUE, XSI

XMLVEND = (BASE, REVENUE, METER, "")
TEXT_MAX = 200
_XSI_TYPE = f"{{{XSI}}}type"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DECIMAL = re.compile(r"^\+?(\d{1,15})(?:\.(\d{1,12}))?$")


def local(el: etree._Element) -> str:
    return str(etree.QName(el).localname)


def namespace(el: etree._Element) -> str:
    return str(etree.QName(el).namespace or "")


def kids(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str) and local(c) == name
            and namespace(c) in XMLVEND]


def child(el: etree._Element, name: str, path: str) -> etree._Element:
    found = kids(el, name)
    if not found:
        raise schema_fault(f"{path}/{name}", "this element is required")
    return found[0]


def maybe(el: etree._Element, name: str) -> etree._Element | None:
    found = kids(el, name)
    return found[0] if found else None


def attr(el: etree._Element, name: str, path: str, *, required: bool = True,
         longest: int = TEXT_MAX) -> str:
    value = el.get(name)
    if value is None:
        if required:
            raise schema_fault(f"{path}@{name}", "this attribute is required")
        return ""
    value = value.strip()
    if len(value) > longest or _CONTROL.search(value):
        raise schema_fault(f"{path}@{name}", f"at most {longest} printable characters")
    return value


def text(el: etree._Element | None, path: str, *, longest: int = TEXT_MAX,
         strip: bool = True) -> str:
    if el is None:
        return ""
    if len(el):
        raise schema_fault(path, "text only: child elements are not allowed")
    value = el.text or ""
    if strip:
        value = value.strip()
    if len(value) > longest or _CONTROL.search(value):
        raise schema_fault(path, f"at most {longest} printable characters")
    return value


def xsi_type(el: etree._Element) -> str | None:
    """The local name of the element's xsi:type (its QName resolved, else its local part)."""
    value = el.get(_XSI_TYPE)
    if value is None:
        return None
    value = value.strip()
    prefix, _, name = value.rpartition(":")
    return name or prefix or None


# --- the header of every request (b:BaseReq) ---------------------------------------------------


@dataclass(frozen=True)
class Device:
    kind: str  # EANDeviceID / GenericDeviceID
    value: str


@dataclass(frozen=True)
class MsgID:
    date_time: str  # as sent
    unique: str  # as sent
    number: str  # canonical integer text (000009 -> 9)


@dataclass(frozen=True)
class Header:
    client: Device
    terminal: Device
    msg: MsgID
    op_name: str | None
    password: str | None
    new_password: str | None


def device(el: etree._Element, path: str) -> Device:
    kind = xsi_type(el)
    if kind not in (None, "EANDeviceID", "GenericDeviceID"):
        raise schema_fault(path, f"xsi:type must be EANDeviceID or GenericDeviceID, not "
                                 f"{kind[:40]!r}")
    if kind is None:
        kind = "EANDeviceID" if el.get("ean") is not None else "GenericDeviceID"
    name = "ean" if kind == "EANDeviceID" else "id"
    value = attr(el, name, path, longest=40)
    if not value:
        raise schema_fault(f"{path}@{name}", "must not be empty")
    return Device(kind, value)


def msg_id(el: etree._Element, path: str) -> MsgID:
    dt = attr(el, "dateTime", path, longest=40)
    un = attr(el, "uniqueNumber", path, longest=40)
    if not dt:
        raise schema_fault(f"{path}@dateTime", "must not be empty")
    if not un.lstrip("+").isdigit() or not un.lstrip("+").isascii():
        raise schema_fault(f"{path}@uniqueNumber", "must be a whole number")
    return MsgID(dt, un, str(int(un)))


def header(payload: etree._Element) -> Header:
    root = local(payload)
    client = device(child(payload, "clientID", root), f"{root}/clientID")
    terminal = device(child(payload, "terminalID", root), f"{root}/terminalID")
    msg = msg_id(child(payload, "msgID", root), f"{root}/msgID")
    cred = maybe(payload, "authCred")
    op = password = new = None
    if cred is not None:
        op = text(maybe(cred, "opName"), f"{root}/authCred/opName", longest=40) or None
        pw_el, new_el = maybe(cred, "password"), maybe(cred, "newPassword")
        password = text(pw_el, f"{root}/authCred/password", longest=128, strip=False) \
            if pw_el is not None else None
        new = text(new_el, f"{root}/authCred/newPassword", longest=128, strip=False) \
            if new_el is not None else None
    return Header(client, terminal, msg, op, password, new or None)


# --- what a request names -----------------------------------------------------------------------


@dataclass(frozen=True)
class MeterRef:
    pan: str
    msno: str  # as sent
    sgc: str | None = None  # MeterDetail: the key data the client says the meter holds
    krn: str | None = None
    ti: str | None = None


@dataclass(frozen=True)
class AccountRef:
    account_no: str


def meter_ref(el: etree._Element, path: str) -> MeterRef:
    kind = xsi_type(el) or ("MeterCard" if maybe(el, "track2Data") is not None
                            else "MeterNumber")
    if kind == "MeterCard":
        raise unsupported("identifying a meter by its card (track 2 data)")
    if kind not in ("MeterNumber", "MeterDetail", "ExtMeterDetail"):
        raise schema_fault(path, f"xsi:type {kind[:40]!r} is not a meter identifier")
    msno = attr(el, "msno", path, longest=32)
    try:
        pan = meter_pan(msno, field="msno")
    except StsError as exc:
        raise XMLVendFault("MSNOCheckDigitEx", f"{path}@msno {msno!r}: {exc.message}",
                           code="STS.INVALID_METER_NUMBER") from None
    if kind == "MeterNumber":
        return MeterRef(pan, msno)
    return MeterRef(pan, msno, attr(el, "sgc", path, required=False, longest=6),
                    attr(el, "krn", path, required=False, longest=2),
                    attr(el, "ti", path, required=False, longest=2))


def id_method(el: etree._Element, path: str) -> MeterRef | AccountRef:
    kind = xsi_type(el)
    if kind is None:
        kind = "CustIDMethod" if maybe(el, "custIdentifier") is not None else "VendIDMethod"
    if kind == "VendIDMethod":
        return meter_ref(child(el, "meterIdentifier", path), f"{path}/meterIdentifier")
    if kind in ("MeterNumber", "MeterDetail", "ExtMeterDetail", "MeterCard"):
        return meter_ref(el, path)  # a MeterConfig sent directly (updateMeterKeyReq)
    if kind != "CustIDMethod":
        raise schema_fault(path, f"xsi:type {kind[:40]!r} is not an identification method")
    ident = child(el, "custIdentifier", path)
    ikind = xsi_type(ident) or ("CustAccountNo" if ident.get("accNo") is not None else "")
    if ikind != "CustAccountNo":
        raise unsupported(f"finding customers by {ikind or 'this identifier'}")
    return AccountRef(attr(ident, "accNo", f"{path}/custIdentifier", longest=40))


def vend_meter(payload: etree._Element) -> MeterRef:
    """The meter of a vend request (b:BaseVendReq idMethod: a VendIDMethod)."""
    root = local(payload)
    found = id_method(child(payload, "idMethod", root), f"{root}/idMethod")
    if not isinstance(found, MeterRef):
        raise schema_fault(f"{root}/idMethod", "a vend names the meter (VendIDMethod)")
    return found


def resource(payload: etree._Element) -> None:
    """Real clients omit `resource`; when present it must be electricity."""
    el = maybe(payload, "resource")
    if el is None:
        return
    kind = xsi_type(el) or "Electricity"
    if kind != "Electricity":
        raise unsupported(f"resource {kind[:40]}")


def amount(payload: etree._Element) -> str:
    """The money of a credit vend (PurchaseValueCurrency/amt@value) as a decimal text;
    trailing zeros past the cents are dropped (`900.00000000` -> `900.00`)."""
    root = local(payload)
    pv = child(payload, "purchaseValue", root)
    path = f"{root}/purchaseValue"
    kind = xsi_type(pv) or ("PurchaseValueUnits" if maybe(pv, "units") is not None
                            else "PurchaseValueCurrency")
    if kind == "PurchaseValueUnits":
        raise unsupported("buying by units (PurchaseValueUnits): send the money")
    if kind != "PurchaseValueCurrency":
        raise schema_fault(path, f"xsi:type {kind[:40]!r} is not a purchase value")
    value = attr(child(pv, "amt", path), "value", f"{path}/amt", longest=40)
    m = _DECIMAL.match(value)
    if m is None:
        raise schema_fault(f"{path}/amt@value", f"{value[:40]!r} is not a decimal amount")
    whole, frac = m.group(1), (m.group(2) or "")
    if len(frac) > 2 and set(frac[2:]) == {"0"}:
        frac = frac[:2]
    return f"{int(whole)}.{frac}" if frac else str(int(whole))


def advice_msg_id(payload: etree._Element) -> MsgID:
    root = local(payload)
    return msg_id(child(payload, "adviceReqMsgID", root), f"{root}/adviceReqMsgID")


def power_limit_watts(payload: etree._Element) -> int:
    root = local(payload)
    el = child(payload, "pwrLmt", root)
    path = f"{root}/pwrLmt"
    value = attr(el, "value", path, longest=20)
    unit = attr(el, "siUnit", path, required=False, longest=10).lower() or "w"
    m = _DECIMAL.match(value)
    if m is None:
        raise schema_fault(f"{path}@value", f"{value[:20]!r} is not a number")
    scale = {"w": 1, "kw": 1000}.get(unit)
    if scale is None:
        raise schema_fault(f"{path}@siUnit", "W or kW")
    from decimal import Decimal

    watts = Decimal(value.lstrip("+")) * scale
    if watts != watts.to_integral_value():
        raise schema_fault(f"{path}@value", "a whole number of watts")
    return int(watts)


@dataclass(frozen=True)
class KctData:
    to_sgc: str
    to_krn: int
    to_ti: int


def kct_data(payload: etree._Element) -> KctData:
    root = local(payload)
    el = child(payload, "kctData", root)
    path = f"{root}/kctData"
    out = []
    for name, low, high in (("toKRN", 1, 9), ("toTI", 0, 99)):
        v = attr(el, name, path, longest=2)
        if not v.isdigit() or not low <= int(v) <= high:
            raise schema_fault(f"{path}@{name}", f"a number from {low} to {high}")
        out.append(int(v))
    return KctData(attr(el, "toSGC", path, longest=6), out[0], out[1])


def token_text(payload: etree._Element) -> str:
    root = local(payload)
    tok = child(payload, "token", root)
    cipher = maybe(tok, "stsCipher")
    if cipher is None:
        first = maybe(tok, "set1stMeterKey")
        cipher = maybe(first, "stsCipher") if first is not None else None
    if cipher is None:
        raise schema_fault(f"{root}/token/stsCipher", "this element is required")
    return text(cipher, f"{root}/token/stsCipher", longest=40)
