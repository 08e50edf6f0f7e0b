"""The slip of a sale: one model (`Slip`, from the structured receipt) and its text rendering
(40 columns, the API's `slip` and the e-mail); the web slip renders the same model.

The model carries what a utility's slip carries: utility and VAT number, vendor and cashier,
receipt number, local date and time, the meter number as printed, customer, tariff name and
rate, units, amount, VAT rate and amount, charges and debt, total, and the tokens in groups of
four (key change tokens first) with their TIDs and the instruction to enter them in order.
Money, rates and dates are written in the utility's way (`sts.vending.money_text`), words in
its language (`sts.vending.i18n`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sts.codec.digits import group
from sts.codec.pan import printed_number
from sts.vending import i18n
from sts.vending.i18n import N_
from sts.vending.money_text import MoneyStyle, style

WIDTH = 40
Gettext = Callable[[str], str]
ORDINALS = {1: "one", 2: "two", 3: "three", 4: "four"}


# the words that reach a slip from the receipt and the token engine (titles, token labels
# and descriptions, charges): marked here so the catalogues carry them
SLIP_WORDS = (
    N_("CREDIT VEND - TAX INVOICE"), N_("REPRINT - COPY OF TAX INVOICE"),
    N_("TRIAL - NOT A TAX INVOICE"), N_("CREDIT TOKEN"), N_("FREE BASIC UNITS"),
    N_("KEY CHANGE TOKEN 1"), N_("KEY CHANGE TOKEN 2"), N_("KEY CHANGE TOKEN 3"),
    N_("KEY CHANGE TOKEN 4"), N_("CLEAR TAMPER"), N_("CLEAR CREDIT"), N_("SET POWER LIMIT"),
    N_("SET PHASE UNBALANCE LIMIT"), N_("TEST TOKEN"), N_("credit token"),
    N_("key change token"), N_("free basic units"), N_("transfer electricity credit (kWh)"),
    N_("transfer water credit (kl)"), N_("transfer gas credit (m3)"),
    N_("transfer time credit (min)"), N_("Fixed monthly charge"), N_("Debt recovery"),
    N_("one"), N_("two"), N_("three"), N_("four"),
)


def _same(text: str) -> str:
    return text


def instructions(tokens: list[dict[str, Any]], _: Gettext = _same) -> str:
    """What the customer is told, in order: key change tokens first."""
    kct = sum(1 for t in tokens if t.get("kind") == "KCT")
    rest = len(tokens) - kct
    if kct:
        then = (_("then the credit token.") if rest == 1
                else _("then the other {n} tokens.").format(n=rest))
        return _("Enter these {n} key change tokens first, in the order shown (the meter "
                 "shows PLS-2nd between them), ").format(n=_(ORDINALS.get(kct, str(kct)))) + then
    if rest > 1:
        return _("Enter the tokens in the order shown.")
    return _("Enter the token on the meter's keypad and press Enter.")


@dataclass(frozen=True)
class SlipToken:
    step: int
    label: str
    units: str  # "12.3 kWh", or "" (a key change token)
    digits: str  # in groups of four; "" when none was made (a trial)
    token: str  # the 20 digits, or ""
    tid: str
    kct: bool


@dataclass(frozen=True)
class Slip:
    title: str
    utility: str
    address: str
    vat_number: str
    vendor: str
    cashier: str
    receipt_no: str
    when: str
    meter: str  # as printed on the meter
    key: str  # SGC, KRN, TI
    customer: str
    customer_address: str
    account: str
    tariff: str
    rates: list[str]  # the blocks this sale was priced at: "12.0 kWh @ R 2,50"
    units: str
    lines: list[tuple[str, str]]  # (what, money): energy, VAT, charges, debt
    total: tuple[str, str]
    tokens: list[SlipToken]
    instruction: str
    labels: dict[str, str] = field(default_factory=dict)  # the words around the figures


def money_style_of(receipt: dict[str, Any]) -> MoneyStyle:
    u = receipt.get("utility") or {}
    return style(u.get("locale") or None, u.get("currency") or "ZAR")


def words_of(receipt: dict[str, Any]) -> Gettext:
    """The gettext of the language of the receipt's utility (a reprint's slip)."""
    u = receipt.get("utility") or {}
    return i18n.gettext_for(u.get("locale"))


def _when(text: str, money: MoneyStyle) -> str:
    try:
        return money.when(datetime.fromisoformat(text))
    except ValueError:
        return text[:16].replace("T", " ")


def slip_model(receipt: dict[str, Any], tokens: list[dict[str, Any]], *, title: str,
               _: Gettext = _same) -> Slip:
    """The slip of a receipt (a sale's, a reprint's or a trial's) and its tokens."""
    money = money_style_of(receipt)
    u = receipt.get("utility") or {}
    v = receipt.get("vendor") or {}
    m = receipt.get("meter") or {}
    c = receipt.get("customer") or {}
    unit = receipt.get("unit", "")
    vat = receipt.get("vat") or {}
    lines: list[tuple[str, str]] = []
    if "energy_amount" in receipt:
        lines.append((_("Energy {units}").format(units=f"{money.units(receipt.get('units'))} "
                                                         f"{unit}"),
                      money.amount(receipt.get("energy_net"))))
        lines.append((_("VAT {rate}").format(rate=money.rate(vat.get("rate"))),
                      money.amount(vat.get("amount"))))
    for ch in receipt.get("charges") or []:
        lines.append((_(ch["description"]), money.amount(ch["amount"])))
    for d in receipt.get("debt") or []:
        lines.append((_(d["description"]), money.amount(d["amount"])))
        lines.append(("  " + _("debt balance"), money.amount(d["balance"])))
    rates = [f"{money.units(s['units'])} {unit} @ {money.amount(s['price'])}"
             for s in receipt.get("steps") or []]
    ordered = sorted(tokens, key=lambda t: t.get("kind") != "KCT")  # stable: KCTs first
    slip_tokens = [
        SlipToken(step=i, label=_(t.get("label") or t.get("description") or ""),
                  units=f"{money.units(t['units'])} {unit}" if t.get("units") else "",
                  digits=group(t["token"]) if t.get("token") else "",
                  token=t.get("token") or "", tid=str(t.get("tid") or ""),
                  kct=t.get("kind") == "KCT")
        for i, t in enumerate(ordered, start=1)]
    return Slip(
        title=_(title), utility=u.get("name", ""), address=u.get("address", ""),
        vat_number=u.get("vat_reg_num", ""), vendor=v.get("name", ""),
        cashier=receipt.get("cashier", ""), receipt_no=receipt.get("receipt_no", ""),
        when=_when(receipt.get("date", ""), money), meter=printed_number(m.get("pan", "")),
        key=f"SGC {m.get('sgc', '')} KRN {m.get('krn', '')} TI {m.get('ti', '')}",
        customer=c.get("name", ""), customer_address=c.get("address", ""),
        account=c.get("account_no", ""), tariff=(receipt.get("tariff") or {}).get("name", ""),
        rates=rates, units=f"{money.units(receipt.get('units'))} {unit}", lines=lines,
        total=(_("TOTAL"), money.amount(receipt.get("amount"))), tokens=slip_tokens,
        instruction=instructions(ordered, _) if ordered else "",
        labels={"vat": _("VAT reg"), "vendor": _("Vendor:"), "cashier": _("Cashier:"),
                "receipt": _("Receipt"), "meter": _("Meter"), "customer": _("Customer"),
                "account": _("Account"), "tariff": _("Tariff"), "tid": _("TID"),
                "no_token": _("(no token)")})


def _line(left: str, right: str = "") -> str:
    room = WIDTH - len(right) - 1
    return f"{left[:room]:<{room}} {right}" if right else left[:WIDTH]


def _wrap(text: str) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > WIDTH:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*out, line] if line else out


def slip_text(s: Slip) -> str:
    """The slip as 40 columns of text: what the API answers and a terminal prints as given."""
    lb = s.labels
    out = [s.title.center(WIDTH).rstrip(), _line(s.utility, f"{lb['vat']} {s.vat_number}")]
    if s.address:
        out.append(s.address[:WIDTH])
    out.append(_line(f"{lb['vendor']} {s.vendor}"))
    if s.cashier:
        out.append(_line(f"{lb['cashier']} {s.cashier}"))
    out += [_line(f"{lb['receipt']} {s.receipt_no}", s.when), _line(f"{lb['meter']} {s.meter}"),
            _line(s.key)]
    if s.customer:
        out.append(_line(f"{lb['customer']} {s.customer}", s.account))
    if s.tariff:
        out.append(_line(f"{lb['tariff']} {s.tariff}"))
        out += ["  " + r for r in s.rates]
    out.append("-" * WIDTH)
    out += [_line(what, amount) for what, amount in s.lines]
    if s.total[1]:
        out.append(_line(*s.total))
    out.append("-" * WIDTH)
    for t in s.tokens:
        out.append(_line(f"{t.step}. {t.label}{' ' + t.units if t.units else ''}",
                         f"{lb['tid']} {t.tid}" if t.tid else ""))
        out.append("  " + t.digits if t.digits else "  " + lb["no_token"])
    if s.instruction:
        out += _wrap(s.instruction)
    return "\n".join(out) + "\n"


def slip(receipt: dict[str, Any], tokens: list[dict[str, Any]], *, title: str,
         _: Gettext = _same) -> str:
    """A ready-to-print slip; the POS prints it as given."""
    return slip_text(slip_model(receipt, tokens, title=title, _=_))
