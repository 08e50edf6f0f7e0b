"""XMLVend messages as a small tree, and its two output profiles.

Real clients read responses by literal prefix and even by regular expression over the raw
text (digest §3, §10), so the bytes are written here by hand, per profile, never left to a
generic serialiser:

* **hexing** (JAXB / Spring-WS, as the Hexing servers at Centlec, GECOL and Senelec answer):
  every element prefixed; the payload root declares `ns2` = base, then `ns3`/`ns4` = revenue
  and meter for a revenue-rooted message, meter and revenue otherwise; `xmlns:xsi` declared on
  the first element that uses it; `xsi:type="ns3:CreditVendTx"`.
* **conlog** (.NET XmlSerializer, as Conlog servers answer Aqualectra, ENDE, JEDCO): one line,
  a default namespace per element (`<clientID ... xmlns="...base..." />`), the members of a
  type from another namespace under a numbered `qN:` prefix declared where the `xsi:type`
  needs it, unprefixed `xsi:type` values where the default namespace resolves them, and
  `xsi:type` as the first attribute.

Both are namespace-well-formed, so a namespace-aware reader sees the same names in either.
`Embed` places a stored payload (an earlier answer, byte for byte) inside another message:
`lastResponse` of a last-response advice, `reprint` of a reprint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BASE = "http://www.nrs.eskom.co.za/xmlvend/base/2.1/schema"
REVENUE = "http://www.nrs.eskom.co.za/xmlvend/revenue/2.1/schema"
METER = "http://www.nrs.eskom.co.za/xmlvend/meter/2.1/schema"
CONLOG_EXT = "http://www.conlog.co.za/xmlvend/base-ext/2.1.1/schema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
SHORT = {BASE: "base", REVENUE: "revenue", METER: "meter", CONLOG_EXT: "conlog-ext", "": ""}
LONG = {v: k for k, v in SHORT.items()}


@dataclass
class E:
    """An element: namespace, local name, attributes in schema order, children or text."""

    ns: str
    name: str
    attrs: list[tuple[str, str]] = field(default_factory=list)
    children: list[E | Embed] = field(default_factory=list)
    text: str | None = None
    xsi_type: tuple[str, str] | None = None  # (namespace, type name)
    nil: bool = False

    def add(self, *kids: E | Embed | None) -> E:
        self.children.extend(k for k in kids if k is not None)
        return self


@dataclass
class Embed:
    """Element `ns:name` holding a stored payload's content unchanged, typed `xsi_type`."""

    ns: str
    name: str
    stored: str
    xsi_type: tuple[str, str]


def esc_text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def esc_attr(value: str) -> str:
    return (esc_text(value).replace('"', "&quot;").replace("\r", "&#13;")
            .replace("\n", "&#10;").replace("\t", "&#9;"))


_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(value: str) -> str:
    """Text as XML 1.0 can carry it (characters it cannot hold are dropped)."""
    return _XML_CHAR.sub("", value)


# --- hexing ------------------------------------------------------------------------------------


def _hexing_prefixes(root_ns: str) -> dict[str, str]:
    if root_ns == REVENUE:
        return {BASE: "ns2", REVENUE: "ns3", METER: "ns4"}
    return {BASE: "ns2", METER: "ns3", REVENUE: "ns4"}


def render_hexing(root: E) -> str:
    prefixes = _hexing_prefixes(root.ns)
    out: list[str] = []
    decls = "".join(f' xmlns:{p}="{ns}"' for ns, p in prefixes.items())
    _hexing(root, prefixes, out, root_decls=decls, xsi_in_scope=False)
    return "".join(out)


def _hexing(el: E, prefixes: dict[str, str], out: list[str], *, root_decls: str = "",
            xsi_in_scope: bool) -> None:
    tag = f"{prefixes[el.ns]}:{el.name}" if el.ns else el.name
    parts = [f' {k}="{esc_attr(clean(v))}"' for k, v in sorted(el.attrs)]
    uses_xsi = el.xsi_type is not None or el.nil
    if el.xsi_type is not None:
        parts.append(f' xsi:type="{prefixes[el.xsi_type[0]]}:{el.xsi_type[1]}"')
    if el.nil:
        parts.append(' xsi:nil="true"')
    parts.append(root_decls)
    if uses_xsi and not xsi_in_scope:
        parts.append(f' xmlns:xsi="{XSI}"')
        xsi_in_scope = True
    head = f"<{tag}{''.join(parts)}"
    if not el.children and el.text is None:
        out.append(head + "/>")
        return
    out.append(head + ">")
    if el.text is not None:
        out.append(esc_text(clean(el.text)))
    for kid in el.children:
        if isinstance(kid, Embed):
            _embed(kid, out, prefixes, xsi_in_scope)
        else:
            _hexing(kid, prefixes, out, xsi_in_scope=xsi_in_scope)
    out.append(f"</{tag}>")


# --- conlog ------------------------------------------------------------------------------------


@dataclass
class _Scope:
    default: str
    prefixes: dict[str, str]  # namespace -> qN


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"q{self.n}"


def render_conlog(root: E) -> str:
    out: list[str] = []
    _conlog(root, _Scope("", {}), _Counter(), out)
    return "".join(out)


def _conlog(el: E, scope: _Scope, counter: _Counter, out: list[str]) -> None:
    decls: list[str] = []
    default, prefixes = scope.default, scope.prefixes
    if el.ns == default:
        tag = el.name
    elif el.ns in prefixes:
        tag = f"{prefixes[el.ns]}:{el.name}"
    else:
        default = el.ns
        tag = el.name
        decls.append(f' xmlns="{el.ns}"')
    head: list[str] = []
    if el.xsi_type is not None:
        tns, tname = el.xsi_type
        if tns == default:
            value = tname
        else:
            if tns not in prefixes:
                p = counter.next()
                prefixes = prefixes | {tns: p}
                head.append(f' xmlns:{p}="{tns}"')
            value = f"{prefixes[tns]}:{tname}"
        head.append(f' xsi:type="{value}"')
    head += [f' {k}="{esc_attr(clean(v))}"' for k, v in el.attrs]
    if el.nil:
        head.append(' xsi:nil="true"')
    start = f"<{tag}{''.join(head)}{''.join(decls)}"
    if not el.children and el.text is None:
        out.append(start + " />")
        return
    out.append(start + ">")
    if el.text is not None:
        out.append(esc_text(clean(el.text)))
    inner = _Scope(default, prefixes)
    for kid in el.children:
        if isinstance(kid, Embed):
            _embed(kid, out, None, True)
        else:
            _conlog(kid, inner, counter, out)
    out.append(f"</{tag}>")


# --- stored payloads inside another message ---------------------------------------------------

_START = re.compile(r"<([A-Za-z_][\w.-]*:)?([A-Za-z_][\w.-]*)([^>]*?)>")
_DECL = re.compile(r'\sxmlns(?::([A-Za-z_][\w.-]*))?="([^"]*)"')


def split_stored(stored: str) -> tuple[dict[str, str], str]:
    """(the root's namespace declarations prefix -> uri, its content) of a stored payload."""
    m = _START.match(stored)
    if m is None or m.group(3).endswith("/"):
        raise ValueError("a stored payload is one element with content")
    decls = {p or "": uri for p, uri in _DECL.findall(m.group(3))}
    close = f"</{m.group(1) or ''}{m.group(2)}>"
    if not stored.endswith(close):
        raise ValueError("a stored payload ends with its root's end tag")
    return decls, stored[m.end():len(stored) - len(close)]


def _embed(item: Embed, out: list[str], _prefixes: dict[str, str] | None,
           xsi_in_scope: bool) -> None:
    decls, content = split_stored(item.stored)
    by_uri = {uri: p for p, uri in decls.items() if p}
    prefix = by_uri.get(item.ns)
    extra = ""
    if prefix is None:
        prefix = "q0"
        extra = f' xmlns:q0="{item.ns}"'
    tns, tname = item.xsi_type
    if decls.get("") == tns:
        tvalue = tname
    elif tns in by_uri:
        tvalue = f"{by_uri[tns]}:{tname}"
    else:
        extra += f' xmlns:qt="{tns}"'
        tvalue = f"qt:{tname}"
    own = "".join(f' xmlns{":" + p if p else ""}="{uri}"' for p, uri in decls.items())
    xsi = "" if xsi_in_scope or decls.get("xsi") == XSI else f' xmlns:xsi="{XSI}"'
    out.append(f'<{prefix}:{item.name}{own}{extra} xsi:type="{tvalue}"{xsi}>{content}'
               f"</{prefix}:{item.name}>")


def render(root: E, profile: str) -> str:
    return render_conlog(root) if profile == "conlog" else render_hexing(root)
