"""What each carrier sends, built from the stored answer of the sale (or engineering issue):
the SMS text in the customer's language, the e-mail with the printable slip, and the AMI
token message (topics and payloads: `sts.delivery.topics`).

Everything comes from the stored answer, so a re-send is byte-for-byte the same tokens.
"""

from __future__ import annotations

from typing import Any

from sts.codec.digits import group
from sts.vending import receipts
from sts.vending.outbox import Job

# per language: a str.format template over tokens, units, unit, receipt_no, meter, amount;
# a config file may add or replace languages ([sms] templates)
SMS_TEMPLATES: dict[str, str] = {
    "en": "Meter {meter}: {tokens} ({units} {unit}). Receipt {receipt_no}.",
    "af": "Meter {meter}: {tokens} ({units} {unit}). Kwitansie {receipt_no}.",
    "fr": "Compteur {meter} : {tokens} ({units} {unit}). Reçu {receipt_no}.",
    "pt": "Contador {meter}: {tokens} ({units} {unit}). Recibo {receipt_no}.",
    "zu": "Imitha {meter}: {tokens} ({units} {unit}). Irisidi {receipt_no}.",
}
ENG_TEMPLATES: dict[str, str] = {
    "en": "Meter {meter}: enter in order {tokens}. Ref {receipt_no}.",
}


def tokens_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    toks = response.get("tokens")
    return [t for t in toks if isinstance(t, dict)] if isinstance(toks, list) else []


def receipt_no(response: dict[str, Any]) -> str:
    rec = response.get("receipt")
    if isinstance(rec, dict) and rec.get("receipt_no"):
        return str(rec["receipt_no"])
    return str(response.get("receipt_no", ""))


def facts(job: Job) -> dict[str, str]:
    r = job.response
    got = r.get("receipt")
    rec: dict[str, Any] = got if isinstance(got, dict) else {}
    toks = tokens_of(r)
    text = ", ".join(
        (f"{t['label'].title()} " if len(toks) > 1 and t.get("label") else "")
        + group(str(t.get("token", ""))) for t in toks)
    return {"tokens": text, "units": str(rec.get("units", "")), "unit": str(rec.get("unit", "")),
            "receipt_no": receipt_no(r), "meter": job.pan, "amount": str(rec.get("amount", "")),
            "purchase_id": job.request_id}


def sms_text(job: Job, templates: dict[str, str] | None = None) -> str:
    own = {**SMS_TEMPLATES, **(templates or {})}
    if job.txn_kind != "sale":
        own = {**ENG_TEMPLATES, **{k: v for k, v in (templates or {}).items()
                                   if k.startswith("eng.")}}
    lang = job.lang or "en"
    template = own.get(lang) or own.get(lang.split("-")[0]) or own["en"]
    return template.format(**facts(job))


def email_parts(job: Job) -> tuple[str, str]:
    """(subject, body): the body is the printable slip, or the token list for engineering."""
    f = facts(job)
    r = job.response
    if job.txn_kind == "sale":
        subject = f"Your prepaid tokens - meter {job.pan}, receipt {f['receipt_no']}"
        rec = r.get("receipt")
        slip = r.get("slip")
        if not isinstance(slip, str) and isinstance(rec, dict):
            slip = receipts.slip(rec, tokens_of(r), title="CREDIT VEND - TAX INVOICE",
                                 _=receipts.words_of(rec))
        body = (f"Enter these tokens on meter {job.pan} in the order shown:\n\n"
                + "\n".join(f"  {group(str(t.get('token', '')))}  {t.get('label') or ''}"
                            for t in tokens_of(r))
                + "\n\n" + (slip or ""))
    else:
        subject = f"Engineering tokens - meter {job.pan}, ref {f['receipt_no']}"
        body = (f"Enter these tokens on meter {job.pan} in the order shown:\n\n"
                + "\n".join(f"  {group(str(t.get('token', '')))}  "
                            f"{t.get('label') or t.get('description', '')}"
                            for t in tokens_of(r)) + "\n")
    return subject, body
