"""MTN MoMo Collections adapter: RequestToPay, its callback, its status query and a
statement CSV, behind the same interface as M-Pesa (`sts.payments.provider.Provider`).

We name each request ourselves (`X-Reference-Id`, a UUID) and send the same UUID as
`externalId`, which MoMo echoes in the callback, so the callback finds its prompt.  The
payment's provider id is MoMo's `financialTransactionId` (what its statement lists); a
callback and a status query that both report it record one payment.  HTTP with the standard
library; the OAuth token (Basic api user:api key, plus the subscription key) is cached.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sts.errors import InputError, ProviderError
from sts.payments.config import MomoSettings
from sts.payments.mpesa import parse_amount
from sts.payments.provider import PromptOutcome, StatementLine
from sts.vending.usecases.payments import Payment, Prompt, PromptAnswer, dumps

NAME = "momo"
TIMEOUT = 10.0
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")
_TXN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")

# (method, url, headers, body) -> (status, JSON object or {})
Call = Callable[[str, str, dict[str, str], bytes | None], tuple[int, dict[str, Any]]]


def _http(method: str, url: str, headers: dict[str, str],
          body: bytes | None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            status, data = resp.status, resp.read(1_000_000)
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read(2000)
    except (urllib.error.URLError, OSError) as exc:
        raise ProviderError(f"MTN MoMo unreachable: {getattr(exc, 'reason', exc)}",
                            field="provider") from None
    try:
        out = json.loads(data) if data.strip() else {}
    except ValueError:
        out = {}
    return status, out if isinstance(out, dict) else {}


def parse_result(body: Any) -> PromptOutcome:
    """A RequestToPay result (the callback, or the status query's answer): SUCCESSFUL with
    its financialTransactionId, FAILED / REJECTED / TIMEOUT, or PENDING."""
    if not isinstance(body, dict):
        raise InputError("the MoMo callback must be a JSON object", field="body")
    ref = body.get("externalId")
    if not isinstance(ref, str) or not _UUID.match(ref):
        raise InputError("externalId must be the request's UUID", field="externalId")
    status = body.get("status")
    if status not in ("SUCCESSFUL", "FAILED", "REJECTED", "TIMEOUT", "PENDING"):
        raise InputError("status must be SUCCESSFUL, FAILED, REJECTED, TIMEOUT or PENDING",
                         field="status")
    reason = body.get("reason")
    desc = (reason.get("message") or reason.get("code") if isinstance(reason, dict)
            else reason if isinstance(reason, str) else "") or ""
    if status != "SUCCESSFUL":
        return PromptOutcome(ref.lower(), str(status), str(desc)[:300], None)
    txn = body.get("financialTransactionId")
    if not isinstance(txn, str) or not _TXN.match(txn):
        raise InputError("financialTransactionId is required", field="financialTransactionId")
    amount = parse_amount(body.get("amount"), "amount")
    currency = body.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise InputError("currency must be a three-letter code", field="currency")
    payer = body.get("payer")
    msisdn = payer.get("partyId") if isinstance(payer, dict) else None
    if not isinstance(msisdn, str) or len(msisdn) > 80:
        raise InputError("payer.partyId is required", field="payer")
    payment = Payment(provider=NAME, provider_id=txn, kind="rtp", account="", amount=amount,
                      currency=currency, msisdn=msisdn, raw=dumps(body),
                      request_id=ref.lower())
    return PromptOutcome(ref.lower(), "0", "SUCCESSFUL", payment)


def parse_statement(text: str) -> list[StatementLine]:
    """A collections statement (CSV): `Id` (the financial transaction id), `Date`,
    `Amount`, `Status`, `External Id`, `From` (the payer)."""
    reader = csv.DictReader(io.StringIO(text))
    for need in ("Id", "Amount"):
        if need not in (reader.fieldnames or []):
            raise InputError(f"the statement has no {need!r} column", field="statement")
    out = []
    for n, row in enumerate(reader, 2):
        txn = (row.get("Id") or "").strip()
        if not _TXN.match(txn):
            raise InputError(f"line {n}: Id is malformed", field="statement")
        at = None
        with contextlib.suppress(ValueError):
            at = datetime.fromisoformat((row.get("Date") or "").strip())
        out.append(StatementLine(txn, parse_amount((row.get("Amount") or "").strip(),
                                                   f"line {n}: Amount"),
                                 (row.get("External Id") or "").strip()[:64], at,
                                 (row.get("Status") or "SUCCESSFUL").strip().replace(
                                     "SUCCESSFUL", "Completed"),
                                 msisdn=(row.get("From") or "").strip()[:80]))
    return out


class Momo:
    """The MTN MoMo provider (Collections) for one subscription."""

    name = NAME

    def __init__(self, settings: MomoSettings, *, http: Call = _http) -> None:
        self.settings = settings
        self._http = http
        self._lock = threading.Lock()
        self._token = ""
        self._token_until = 0.0

    def parse_callback(self, kind: str, body: Any) -> Payment | PromptOutcome:
        return parse_result(body)

    def parse_statement(self, text: str) -> list[StatementLine]:
        return parse_statement(text)

    def initiate(self, prompt: Prompt) -> PromptAnswer:
        """RequestToPay: MoMo answers 202 and asks the payer to approve on the phone."""
        s = self.settings
        ref = str(uuid.uuid4())
        whole = prompt.amount == int(prompt.amount)
        body = {"amount": str(int(prompt.amount)) if whole else str(prompt.amount),
                "currency": s.currency, "externalId": ref,
                "payer": {"partyIdType": "MSISDN", "partyId": prompt.phone.lstrip("+")},
                "payerMessage": "Prepaid token", "payeeNote": f"meter {prompt.meter_pan}"}
        status, out = self._http("POST", f"{s.api}/collection/v1_0/requesttopay",
                                 self._headers() | {
                                     "X-Reference-Id": ref,
                                     "X-Callback-Url": f"{s.callback_base}/pay/momo/callback",
                                     "Content-Type": "application/json"},
                                 json.dumps(body).encode())
        if status != 202:
            raise ProviderError(f"MTN MoMo refused the request ({status}): "
                                f"{str(out.get('message', ''))[:200]}", field="provider")
        return PromptAnswer(ref)

    def status(self, request_id: str) -> PromptOutcome | None:
        status, out = self._http(
            "GET", f"{self.settings.api}/collection/v1_0/requesttopay/{request_id}",
            self._headers(), None)
        if status != 200:
            raise ProviderError(f"MTN MoMo status query answered {status}", field="provider")
        outcome = parse_result(out | {"externalId": out.get("externalId", request_id)})
        return None if outcome.result_code == "PENDING" else outcome

    def _headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.access_token(),
                "X-Target-Environment": self.settings.environment,
                "Ocp-Apim-Subscription-Key": self.settings.secrets.subscription_key}

    def access_token(self) -> str:
        with self._lock:
            if self._token and time.monotonic() < self._token_until:
                return self._token
            sec = self.settings.secrets
            if not sec.api_user or not sec.api_key:
                raise ProviderError("no MTN MoMo API user and key configured "
                                    "(STS_MOMO_SECRETS)", field="provider")
            basic = base64.b64encode(f"{sec.api_user}:{sec.api_key}".encode()).decode()
            status, out = self._http("POST", f"{self.settings.api}/collection/token/",
                                     {"Authorization": "Basic " + basic,
                                      "Ocp-Apim-Subscription-Key": sec.subscription_key},
                                     b"")
            token = out.get("access_token")
            if status != 200 or not isinstance(token, str) or not token:
                raise ProviderError(f"MTN MoMo gave no access token ({status})",
                                    field="provider")
            try:
                life = float(out.get("expires_in", 3600))
            except (TypeError, ValueError):
                life = 3600.0
            self._token, self._token_until = token, time.monotonic() + max(0.0, life - 60)
            return token
