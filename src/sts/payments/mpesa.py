"""Safaricom M-Pesa (Daraja) adapter: C2B paybill callbacks, M-Pesa Express (STK push), its
status query, and the organisation's statement CSV.

Every field of a callback is checked on its own, with a message naming it: these bodies come
from the network, and a wrong one must be a clear 400, never a 5xx or a silent sale.  HTTP
calls use the standard library (no client dependency), with the OAuth token
(`client_credentials`) cached until shortly before it expires.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sts.codec.pan import printed_number
from sts.errors import InputError, ProviderError
from sts.payments.config import MobileMoneySettings
from sts.payments.provider import PromptOutcome, StatementLine
from sts.vending.usecases.payments import Payment, Prompt, PromptAnswer, dumps

NAME = "mpesa"
_TRANS_ID = re.compile(r"^[A-Za-z0-9]{4,32}$")
_SHORTCODE = re.compile(r"^[0-9]{5,7}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_STAMP = "%Y%m%d%H%M%S"
TIMEOUT = 10.0

# C2B validation answers (Daraja's documented result codes)
ACCEPTED = {"ResultCode": "0", "ResultDesc": "Accepted"}
REJECT_CODES = {"account": "C2B00012", "amount": "C2B00013", "other": "C2B00016"}


def account_reference(pan: str) -> str:
    """An STK prompt's AccountReference (Daraja takes at most 12 characters): the number
    printed on the meter when it fits (11 digits, IIN 600727), else the MeterPAN's last 12."""
    number = printed_number(pan)
    return number if len(number) <= 12 else pan[-12:]


def rejected(outcome: str) -> dict[str, str]:
    return {"ResultCode": REJECT_CODES.get(outcome, "C2B00016"), "ResultDesc": "Rejected"}


# --- field checks ---------------------------------------------------------------------------


def _text(body: dict[str, Any], name: str, longest: int, *, required: bool = True,
          pattern: re.Pattern[str] | None = None) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InputError(f"{name} is required", field=name)
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InputError(f"{name} must be text", field=name)
    if len(value) > longest:
        raise InputError(f"{name} must be at most {longest} characters", field=name)
    if pattern is not None and not pattern.match(value):
        raise InputError(f"{name} is malformed", field=name)
    return value


def parse_amount(value: Any, name: str) -> Decimal:
    """A money amount as Daraja sends it ("100.00", "100", 100 or 100.0): positive, whole
    cents, below 10^12."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{name} must be an amount such as 100.00", field=name)
    text = repr(value) if isinstance(value, float) else str(value).strip()
    if len(text) > 20 or not re.fullmatch(r"[0-9]{1,12}(\.[0-9]+)?", text):
        raise InputError(f"{name} must be an amount such as 100.00", field=name)
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InputError(f"{name} must be an amount such as 100.00", field=name) from None
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise InputError(f"{name} must be greater than zero, in whole cents", field=name)
    return amount.quantize(Decimal("0.01"))


def parse_time(value: Any, name: str) -> datetime:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{14}", text):
        raise InputError(f"{name} must be YYYYMMDDHHmmss", field=name)
    try:
        return datetime.strptime(text, _STAMP)
    except ValueError:
        raise InputError(f"{name} is not a real date and time", field=name) from None


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InputError(f"the {what} must be a JSON object", field="body")
    return body


def parse_c2b(body: Any, shortcode: str | None = None) -> Payment:
    """A C2B validation or confirmation body; with `shortcode`, it must be ours."""
    b = _object(body, "C2B callback")
    trans_id = _text(b, "TransID", 32, pattern=_TRANS_ID)
    kind = _text(b, "TransactionType", 40, required=False)
    paid_at = parse_time(b.get("TransTime"), "TransTime")
    amount = parse_amount(b.get("TransAmount"), "TransAmount")
    code = _text(b, "BusinessShortCode", 7, pattern=_SHORTCODE)
    if shortcode is not None and code != shortcode:
        raise InputError("BusinessShortCode is not this paybill", field="BusinessShortCode")
    account = _text(b, "BillRefNumber", 64, required=False)
    for name in ("InvoiceNumber", "OrgAccountBalance", "ThirdPartyTransID"):
        _text(b, name, 64, required=False)
    msisdn = _text(b, "MSISDN", 80, required=False)
    names = [_text(b, n, 40, required=False) for n in ("FirstName", "MiddleName", "LastName")]
    return Payment(provider=NAME, provider_id=trans_id, kind="c2b", account=account.strip(),
                   amount=amount, currency="KES", msisdn=msisdn,
                   payer=" ".join(n for n in names if n), paid_at=paid_at,
                   raw=dumps({"type": kind, **{k: v for k, v in b.items()
                                               if isinstance(v, (str, int, float))}}))


def parse_stk_callback(body: Any) -> PromptOutcome:
    """`{"Body": {"stkCallback": {...}}}`: paid (ResultCode 0, with its CallbackMetadata) or
    not (cancelled 1032, timed out 1037, ...)."""
    b = _object(body, "STK callback")
    inner = b.get("Body")
    cb = inner.get("stkCallback") if isinstance(inner, dict) else None
    if not isinstance(cb, dict):
        raise InputError("Body.stkCallback is required", field="Body.stkCallback")
    request_id = _text(cb, "CheckoutRequestID", 64, pattern=_REQUEST_ID)
    _text(cb, "MerchantRequestID", 64, required=False)
    code = cb.get("ResultCode")
    if isinstance(code, bool) or not isinstance(code, (int, str)) or not re.fullmatch(
            r"[0-9]{1,9}", str(code)):
        raise InputError("ResultCode must be a number", field="ResultCode")
    desc = _text(cb, "ResultDesc", 300, required=False)
    if int(code) != 0:
        return PromptOutcome(request_id, str(code), desc, None)
    meta = cb.get("CallbackMetadata")
    items = meta.get("Item") if isinstance(meta, dict) else None
    if not isinstance(items, list) or len(items) > 20:
        raise InputError("CallbackMetadata.Item must be a list", field="CallbackMetadata")
    values: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("Name"), str):
            values[item["Name"]] = item.get("Value")
    amount = parse_amount(values.get("Amount"), "Amount")
    receipt = values.get("MpesaReceiptNumber")
    if not isinstance(receipt, str) or not _TRANS_ID.match(receipt):
        raise InputError("MpesaReceiptNumber is required", field="MpesaReceiptNumber")
    paid_at = parse_time(values.get("TransactionDate"), "TransactionDate")
    phone = values.get("PhoneNumber")
    msisdn = str(phone) if isinstance(phone, (int, str)) and not isinstance(phone, bool) else ""
    payment = Payment(provider=NAME, provider_id=receipt, kind="stk", account="",
                      amount=amount, currency="KES", msisdn=msisdn[:80], paid_at=paid_at,
                      raw=dumps(cb), request_id=request_id)
    return PromptOutcome(request_id, "0", desc, payment)


def parse_statement(text: str) -> list[StatementLine]:
    """The M-Pesa organisation statement (CSV): `Receipt No.`, `Completion Time`, `Paid In`,
    `Transaction Status`, `A/C No.`; lines that paid nothing in are left out."""
    reader = csv.DictReader(io.StringIO(text))
    fields = set(reader.fieldnames or [])
    for need in ("Receipt No.", "Paid In"):
        if need not in fields:
            raise InputError(f"the statement has no {need!r} column", field="statement")
    out = []
    for n, row in enumerate(reader, 2):
        paid = (row.get("Paid In") or "").replace(",", "").strip()
        if not paid or paid.strip("0.") == "":
            continue  # a withdrawal or a charge: nothing paid in
        receipt = (row.get("Receipt No.") or "").strip()
        if not _TRANS_ID.match(receipt):
            raise InputError(f"line {n}: Receipt No. is malformed", field="statement")
        at_text = (row.get("Completion Time") or "").strip()
        at = None
        for fmt in ("%Y-%m-%d %H:%M:%S", "%d-%m-%Y %H:%M:%S", _STAMP):
            try:
                at = datetime.strptime(at_text, fmt)
                break
            except ValueError:
                continue
        # "Other Party Info" reads "254722000111 - JOHN DOE" (the number may be masked)
        party, _, payer = (row.get("Other Party Info") or "").partition(" - ")
        out.append(StatementLine(receipt, parse_amount(paid, f"line {n}: Paid In"),
                                 (row.get("A/C No.") or "").strip()[:64], at,
                                 (row.get("Transaction Status") or "Completed").strip(),
                                 msisdn=party.strip()[:80], payer=payer.strip()[:120]))
    return out


# --- calls to Daraja --------------------------------------------------------------------------


Post = Callable[[str, dict[str, str], bytes | None], dict[str, Any]]


def _http(url: str, headers: dict[str, str], body: bytes | None) -> dict[str, Any]:
    req = urllib.request.Request(url, data=body, headers=headers,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            data = resp.read(1_000_000)
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        try:
            message = json.loads(detail).get("errorMessage", "") or detail
        except (ValueError, AttributeError):
            message = detail
        raise ProviderError(f"M-Pesa answered {exc.code}: {str(message)[:200]}",
                            field="provider") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ProviderError(f"M-Pesa unreachable: {getattr(exc, 'reason', exc)}",
                            field="provider") from None
    try:
        out = json.loads(data)
    except ValueError:
        raise ProviderError("M-Pesa answered something that is not JSON",
                            field="provider") from None
    if not isinstance(out, dict):
        raise ProviderError("M-Pesa answered something that is not an object",
                            field="provider")
    return out


class Mpesa:
    """The M-Pesa provider (Daraja API) for one paybill."""

    name = NAME

    def __init__(self, settings: MobileMoneySettings, *, http: Post = _http,
                 clock: Callable[[], datetime] = datetime.now) -> None:
        self.settings = settings
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._token_until = 0.0

    # the adapter interface ---------------------------------------------------------------

    def parse_callback(self, kind: str, body: Any) -> Payment | PromptOutcome:
        if kind == "stk":
            return parse_stk_callback(body)
        return parse_c2b(body, self.settings.shortcode)

    def parse_statement(self, text: str) -> list[StatementLine]:
        return parse_statement(text)

    def initiate(self, prompt: Prompt) -> PromptAnswer:
        """M-Pesa Express: ask Daraja to prompt the payer's phone for the paybill."""
        s = self.settings
        phone = prompt.phone.lstrip("+")
        if prompt.amount != int(prompt.amount):
            raise InputError("M-Pesa prompts are for whole shillings", field="amount")
        body = self._signed() | {
            "TransactionType": "CustomerPayBillOnline",
            "Amount": str(int(prompt.amount)),
            "PartyA": phone, "PartyB": s.shortcode, "PhoneNumber": phone,
            "CallBackURL": f"{s.callback_base}/pay/stk/callback",
            # the number printed on the meter (Daraja takes 12 characters): what the
            # statement's "A/C No." then shows, so `reconcile --sell` finds the meter
            "AccountReference": account_reference(prompt.meter_pan),
            "TransactionDesc": "Prepaid token"}
        out = self._call("/mpesa/stkpush/v1/processrequest", body)
        if str(out.get("ResponseCode")) != "0" or not isinstance(
                out.get("CheckoutRequestID"), str):
            raise ProviderError(f"M-Pesa refused the prompt: "
                                f"{str(out.get('ResponseDescription', ''))[:200]}",
                                field="provider")
        return PromptAnswer(out["CheckoutRequestID"][:64],
                            str(out.get("MerchantRequestID", ""))[:64])

    def status(self, request_id: str) -> PromptOutcome | None:
        """The STK push query; None while the customer has not answered."""
        try:
            out = self._call("/mpesa/stkpushquery/v1/query",
                             self._signed() | {"CheckoutRequestID": request_id})
        except ProviderError as exc:
            if "being processed" in exc.message:  # the customer has not answered yet
                return None
            raise
        code = out.get("ResultCode")
        if code is None:
            return None
        # a query tells whether it was paid, not the receipt: a paid prompt waits for its
        # callback (or the statement) to become a payment
        return PromptOutcome(request_id, str(code), str(out.get("ResultDesc", ""))[:300], None)

    def register_urls(self, base: str) -> dict[str, Any]:
        """Tell Daraja where our C2B validation and confirmation endpoints are."""
        return self._call("/mpesa/c2b/v1/registerurl", {
            "ShortCode": self.settings.shortcode, "ResponseType": "Cancelled",
            "ConfirmationURL": f"{base}/pay/c2b/confirmation",
            "ValidationURL": f"{base}/pay/c2b/validation"})

    # helpers -------------------------------------------------------------------------------

    def password(self, timestamp: str) -> str:
        """base64(shortcode + passkey + timestamp), as Daraja's STK calls want it."""
        s = self.settings
        return base64.b64encode(
            f"{s.shortcode}{s.secrets.passkey}{timestamp}".encode()).decode()

    def _signed(self) -> dict[str, str]:
        stamp = self._clock().strftime(_STAMP)
        return {"BusinessShortCode": self.settings.shortcode,
                "Password": self.password(stamp), "Timestamp": stamp}

    def access_token(self) -> str:
        """OAuth client_credentials with the consumer key and secret, cached."""
        with self._lock:
            if self._token and time.monotonic() < self._token_until:
                return self._token
            sec = self.settings.secrets
            if not sec.consumer_key or not sec.consumer_secret:
                raise ProviderError("no M-Pesa consumer key and secret configured "
                                    "(STS_MPESA_SECRETS)", field="provider")
            basic = base64.b64encode(f"{sec.consumer_key}:{sec.consumer_secret}".encode())
            out = self._http(f"{self.settings.api}/oauth/v1/generate?grant_type="
                             "client_credentials", {"Authorization": "Basic " + basic.decode()},
                             None)
            token = out.get("access_token")
            if not isinstance(token, str) or not token:
                raise ProviderError("M-Pesa gave no access token", field="provider")
            try:
                life = float(out.get("expires_in", 3599))
            except (TypeError, ValueError):
                life = 3599.0
            self._token, self._token_until = token, time.monotonic() + max(0.0, life - 60)
            return token

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Authorization": "Bearer " + self.access_token(),
                   "Content-Type": "application/json"}
        return self._http(self.settings.api + path, headers, json.dumps(body).encode())
