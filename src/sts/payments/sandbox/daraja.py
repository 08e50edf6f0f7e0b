"""A local stand-in for Safaricom's Daraja API, as its documentation describes it, on a free
loopback port: OAuth (client_credentials, Basic consumer key:secret), C2B register URL,
M-Pesa Express (STK push: the request checked field by field, accepted, then the callback
POSTed to its CallBackURL after a delay, optionally repeated, or never), and the STK query.

What the customer does with each prompt is scripted by the test: `outcome` is `paid`,
`cancelled` (ResultCode 1032) or `timeout` (1037); `lose_callbacks` sends none at all (the
status query still knows the outcome).
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

RESULTS = {"cancelled": (1032, "Request cancelled by user"),
           "timeout": (1037, "DS timeout user cannot be reached")}


@dataclass
class Prompted:
    body: dict[str, Any]
    checkout_id: str
    merchant_id: str
    receipt: str
    outcome: str


@dataclass
class Daraja:
    consumer_key: str
    consumer_secret: str
    passkey: str
    shortcode: str
    outcome: str = "paid"
    lose_callbacks: bool = False
    delay: float = 0.05
    repeats: int = 1
    paid_amount: str | None = None  # pay a different amount than asked (a hostile test)
    prompts: list[Prompted] = field(default_factory=list)
    registered: list[dict[str, Any]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    callbacks_sent: int = 0
    errors: list[str] = field(default_factory=list)
    url: str = ""

    def start(self) -> Daraja:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # the documented behaviour ---------------------------------------------------------------

    def oauth(self, headers: Any, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        expected = base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode())
        if query.get("grant_type") != ["client_credentials"]:
            return 400, {"errorCode": "400.008.02", "errorMessage": "Invalid grant type passed"}
        if headers.get("Authorization") != "Basic " + expected.decode():
            return 400, {"errorCode": "400.008.01",
                         "errorMessage": "Invalid Authentication passed"}
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return 200, {"access_token": token, "expires_in": "3599"}

    def authorised(self, headers: Any) -> bool:
        auth = headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.tokens

    def check_password(self, body: dict[str, Any]) -> str | None:
        stamp = str(body.get("Timestamp", ""))
        try:
            datetime.strptime(stamp, "%Y%m%d%H%M%S")
        except ValueError:
            return "Invalid Timestamp"
        if body.get("BusinessShortCode") != self.shortcode:
            return "Invalid BusinessShortCode"
        want = base64.b64encode(f"{self.shortcode}{self.passkey}{stamp}".encode()).decode()
        return None if body.get("Password") == want else "Invalid Password"

    def stk_push(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        problem = self.check_password(body)
        if problem is None and body.get("TransactionType") != "CustomerPayBillOnline":
            problem = "Invalid TransactionType"
        if problem is None and not str(body.get("Amount", "")).isdigit():
            problem = "Invalid Amount"
        for name in ("PartyA", "PhoneNumber"):
            if problem is None and not str(body.get(name, "")).startswith("254"):
                problem = f"Invalid {name}"
        if problem is None and body.get("PartyB") != self.shortcode:
            problem = "Invalid PartyB"
        if problem is None and not str(body.get("CallBackURL", "")).startswith("http"):
            problem = "Invalid CallBackURL"
        if problem is None and not 0 < len(str(body.get("AccountReference", ""))) <= 12:
            problem = "Invalid AccountReference"
        if problem is not None:
            self.errors.append(problem)
            return 400, {"requestId": secrets.token_hex(4), "errorCode": "400.002.02",
                         "errorMessage": f"Bad Request - {problem}"}
        n = len(self.prompts) + 1
        p = Prompted(body, f"ws_CO_{n:012d}", f"29115-{n:08d}-1", f"SKP{n:07d}",
                     self.outcome)
        self.prompts.append(p)
        if not self.lose_callbacks:
            threading.Thread(target=self._call_back, args=(p,), daemon=True).start()
        return 200, {"MerchantRequestID": p.merchant_id, "CheckoutRequestID": p.checkout_id,
                     "ResponseCode": "0",
                     "ResponseDescription": "Success. Request accepted for processing",
                     "CustomerMessage": "Success. Request accepted for processing"}

    def callback_body(self, p: Prompted) -> dict[str, Any]:
        cb: dict[str, Any] = {"MerchantRequestID": p.merchant_id,
                              "CheckoutRequestID": p.checkout_id}
        if p.outcome == "paid":
            amount = float(self.paid_amount or p.body["Amount"])
            cb |= {"ResultCode": 0,
                   "ResultDesc": "The service request is processed successfully.",
                   "CallbackMetadata": {"Item": [
                       {"Name": "Amount", "Value": amount},
                       {"Name": "MpesaReceiptNumber", "Value": p.receipt},
                       {"Name": "Balance"},
                       {"Name": "TransactionDate", "Value": 20250303100500},
                       {"Name": "PhoneNumber", "Value": int(p.body["PhoneNumber"])}]}}
        else:
            code, desc = RESULTS[p.outcome]
            cb |= {"ResultCode": code, "ResultDesc": desc}
        return {"Body": {"stkCallback": cb}}

    def _call_back(self, p: Prompted) -> None:
        threading.Event().wait(self.delay)
        data = json.dumps(self.callback_body(p)).encode()
        for _ in range(self.repeats):
            req = urllib.request.Request(p.body["CallBackURL"], data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    resp.read()
            except Exception as exc:  # the stand-in records, the test asserts
                self.errors.append(f"callback: {exc}")
            self.callbacks_sent += 1

    def query(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        problem = self.check_password(body)
        found = [p for p in self.prompts if p.checkout_id == body.get("CheckoutRequestID")]
        if problem is not None or not found:
            return 400, {"errorCode": "400.002.02",
                         "errorMessage": f"Bad Request - {problem or 'Invalid CheckoutRequestID'}"}
        p = found[0]
        code, desc = (0, "The service request is processed successfully.") \
            if p.outcome == "paid" else RESULTS[p.outcome]
        return 200, {"ResponseCode": "0", "ResponseDescription": "The service request has "
                     "been accepted successsfully", "MerchantRequestID": p.merchant_id,
                     "CheckoutRequestID": p.checkout_id, "ResultCode": str(code),
                     "ResultDesc": desc}


def _handler(d: Daraja) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/oauth/v1/generate":
                self._send(*d.oauth(self.headers, parse_qs(url.query)))
            else:
                self._send(404, {"errorMessage": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, {"errorMessage": "Bad Request - body is not JSON"})
                return
            if not d.authorised(self.headers):
                self._send(401, {"errorCode": "404.001.04",
                                 "errorMessage": "Invalid Authentication Header"})
                return
            path = urlparse(self.path).path
            if path == "/mpesa/stkpush/v1/processrequest":
                self._send(*d.stk_push(body))
            elif path == "/mpesa/stkpushquery/v1/query":
                self._send(*d.query(body))
            elif path == "/mpesa/c2b/v1/registerurl":
                d.registered.append(body)
                self._send(200, {"OriginatorCoversationID": secrets.token_hex(8),
                                 "ResponseCode": "0", "ResponseDescription": "Success"})
            else:
                self._send(404, {"errorMessage": "not found"})

    return Handler
