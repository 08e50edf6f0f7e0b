"""SOAP transport of XMLVend (digest §1): decoding a request body safely, and wrapping an
answer in the envelope of the request's SOAP version and the client's profile.

Parsing is hostile-input safe: a DTD is refused before the parser runs (so no entity is ever
expanded or fetched), and the parser itself resolves no entities, reads no network, keeps
libxml2's limits on depth and text size (no huge_tree) and collects no ids.  The body's
characters are decoded by the HTTP charset or a byte-order mark, whichever is present, and a
contradicting `encoding=` in the XML declaration is ignored (.NET clients declare utf-16
over UTF-8 bytes).
"""

from __future__ import annotations

import codecs
import gzip
import re
import zlib
from dataclasses import dataclass

from lxml import etree

from sts.xmlvend.faults import XMLVendFault, schema_fault
from sts.xmlvend.tree import XSD, XSI, esc_text

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF32_LE, "utf-32-le"),
         (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                          load_dtd=False, dtd_validation=False, collect_ids=False,
                          remove_comments=True, remove_pis=True)


@dataclass(frozen=True)
class Incoming:
    soap: str  # the envelope namespace: SOAP11 or SOAP12
    payload: etree._Element  # the Body's first child


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """A request body sent with Content-Encoding gzip or deflate, decompressed to at most
    `limit` bytes (a compression bomb is refused, never expanded)."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name not in ("gzip", "x-gzip", "deflate"):
        raise schema_fault("Content-Encoding", f"{name[:20]!r} is not accepted (gzip, deflate)")
    wbits = 16 + zlib.MAX_WBITS if name != "deflate" else zlib.MAX_WBITS
    try:
        d = zlib.decompressobj(wbits)
        out = d.decompress(body, limit + 1)
    except zlib.error:
        raise schema_fault("Content-Encoding", "the body is not valid compressed data") from None
    if len(out) > limit or d.unconsumed_tail:
        raise schema_fault("Envelope", f"the decompressed body is over {limit} bytes")
    return out


def decode(body: bytes, content_type: str | None) -> str:
    """The body's text: by BOM, else the HTTP charset, else UTF-8."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            enc, body = name, body[len(bom):]
            break
    else:
        m = _CHARSET.search(content_type or "")
        enc = m.group(1).lower() if m else "utf-8"
        try:
            codecs.lookup(enc)
        except LookupError:
            raise schema_fault("Content-Type", f"unknown charset {enc[:30]!r}") from None
    try:
        return body.decode(enc)
    except (UnicodeDecodeError, LookupError):
        raise schema_fault("Envelope", f"the body is not valid {enc} text") from None


def parse(body: bytes, content_type: str | None) -> Incoming:
    """The SOAP envelope's version and its Body's first element."""
    if not body.strip():
        raise schema_fault("Envelope", "the request body is empty")
    text = _DECL.sub("", decode(body, content_type).lstrip("\ufeff"), count=1)
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise schema_fault("Envelope", "a document type declaration is not allowed")
    try:
        root = etree.fromstring(text.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise schema_fault("Envelope", f"not well-formed XML: {str(exc)[:200]}") from None
    if root is None:
        raise schema_fault("Envelope", "the request body holds no XML element")
    qn = etree.QName(root)
    if qn.localname != "Envelope" or qn.namespace not in (SOAP11, SOAP12):
        raise schema_fault("Envelope", "the root must be a SOAP 1.1 or 1.2 Envelope")
    soap = str(qn.namespace)
    body_el = None
    for child in root:
        if not isinstance(child.tag, str):
            continue
        cq = etree.QName(child)
        if cq.namespace == soap and cq.localname == "Body":
            body_el = child
    if body_el is None:
        raise schema_fault("Body", "the SOAP Body is missing")
    payload = next((c for c in body_el if isinstance(c, etree._Element)
                    and isinstance(c.tag, str)), None)
    if payload is None:
        raise schema_fault("Body", "the SOAP Body holds no request element")
    return Incoming(soap, payload)


# --- answers ------------------------------------------------------------------------------------


def envelope(payload: str, *, profile: str, soap: str) -> str:
    if profile == "conlog":
        return ('<?xml version="1.0" encoding="utf-8"?>'
                f'<soap:Envelope xmlns:soap="{soap}" xmlns:xsi="{XSI}" xmlns:xsd="{XSD}">'
                f"<soap:Body>{payload}</soap:Body></soap:Envelope>")
    return (f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{soap}"><SOAP-ENV:Header/>'
            f"<SOAP-ENV:Body>{payload}</SOAP-ENV:Body></SOAP-ENV:Envelope>")


def fault_envelope(detail: str, fault: XMLVendFault, *, profile: str, soap: str) -> str:
    """A SOAP Fault carrying `detail` (the xmlvendFaultResp); faultstring = the description."""
    text = esc_text(fault.desc)
    p = "soap" if profile == "conlog" else "SOAP-ENV"
    if soap == SOAP12:
        code = "Sender" if fault.client else "Receiver"
        body = (f"<{p}:Fault><{p}:Code><{p}:Value>{p}:{code}</{p}:Value></{p}:Code>"
                f'<{p}:Reason><{p}:Text xml:lang="en">{text}</{p}:Text></{p}:Reason>'
                f"<{p}:Detail>{detail}</{p}:Detail></{p}:Fault>")
    else:
        code = "Client" if fault.client else "Server"
        lang = "" if profile == "conlog" else ' xml:lang="en"'
        body = (f"<{p}:Fault><faultcode>{p}:{code}</faultcode>"
                f"<faultstring{lang}>{text}</faultstring><detail>{detail}</detail></{p}:Fault>")
    return envelope(body, profile=profile, soap=soap)


def content_type(soap: str) -> str:
    if soap == SOAP12:
        return "application/soap+xml; charset=utf-8"
    return "text/xml; charset=utf-8"


def wants_gzip(accept_encoding: str | None) -> bool:
    """gzip only when the client offers it (AfrikPay sends `Accept-Encoding: UTF-8`)."""
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() in ("gzip", "x-gzip"):
            q = params.strip().lower()
            return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
    return False


def compress(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=5, mtime=0)
