"""A local stand-in for MTN MoMo Collections, as its documentation describes it: the token
(Basic api user:key + Ocp-Apim-Subscription-Key), RequestToPay (X-Reference-Id a UUID,
X-Target-Environment, X-Callback-Url; 202 and no body), the result callback to
X-Callback-Url after a delay (or never), and GET requesttopay/{referenceId}.  The payer's
choice is scripted: `outcome` SUCCESSFUL / FAILED / REJECTED."""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class MomoStandIn:
    api_user: str
    api_key: str
    subscription_key: str
    environment: str = "sandbox"
    outcome: str = "SUCCESSFUL"
    lose_callbacks: bool = False
    paid_currency: str | None = None
    delay: float = 0.05
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    callbacks_sent: int = 0
    errors: list[str] = field(default_factory=list)
    url: str = ""

    def start(self) -> MomoStandIn:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def result(self, ref: str) -> dict[str, Any]:
        req = self.requests[ref]
        out = {"amount": req["amount"], "currency": self.paid_currency or req["currency"],
               "externalId": req["externalId"], "payer": req["payer"],
               "payerMessage": req.get("payerMessage", ""),
               "payeeNote": req.get("payeeNote", ""), "status": self.outcome}
        if self.outcome == "SUCCESSFUL":
            out["financialTransactionId"] = str(1_000_000_000 + list(self.requests).index(ref))
        else:
            out["reason"] = {"code": "APPROVAL_REJECTED", "message": "payer rejected"}
        return out

    def call_back(self, ref: str, url: str) -> None:
        threading.Event().wait(self.delay)
        req = urllib.request.Request(url, data=json.dumps(self.result(ref)).encode(),
                                     method="PUT", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
        except Exception as exc:  # recorded for the test to assert on
            self.errors.append(f"callback: {exc}")
        self.callbacks_sent += 1


def _handler(m: MomoStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _subscribed(self) -> bool:
            if self.headers.get("Ocp-Apim-Subscription-Key") != m.subscription_key:
                self._send(401, {"statusCode": 401, "message": "Access denied due to "
                                 "invalid subscription key."})
                return False
            return True

        def _authorised(self) -> bool:
            auth = self.headers.get("Authorization", "")
            if not (auth.startswith("Bearer ") and auth[7:] in m.tokens):
                self._send(401, {"code": "UNAUTHORIZED", "message": "invalid token"})
                return False
            if self.headers.get("X-Target-Environment") != m.environment:
                self._send(400, {"code": "INVALID_TARGET_ENVIRONMENT"})
                return False
            return True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self._subscribed():
                return
            if self.path == "/collection/token/":
                want = base64.b64encode(f"{m.api_user}:{m.api_key}".encode()).decode()
                if self.headers.get("Authorization") != "Basic " + want:
                    self._send(401, {"error": "login_failed"})
                    return
                token = secrets.token_urlsafe(16)
                m.tokens.add(token)
                self._send(200, {"access_token": token, "token_type": "access_token",
                                 "expires_in": 3600})
            elif self.path == "/collection/v1_0/requesttopay":
                if not self._authorised():
                    return
                ref = self.headers.get("X-Reference-Id", "")
                try:
                    req = json.loads(body)
                except ValueError:
                    req = None
                problem = None
                if not UUID.match(ref):
                    problem = "X-Reference-Id must be a UUID"
                elif ref in m.requests:
                    problem = "RESOURCE_ALREADY_EXIST"
                elif not isinstance(req, dict) or not str(req.get("amount", "")).isdigit():
                    problem = "amount"
                elif req.get("payer", {}).get("partyIdType") != "MSISDN":
                    problem = "payer"
                if problem is not None:
                    m.errors.append(problem)
                    self._send(400 if problem != "RESOURCE_ALREADY_EXIST" else 409,
                               {"code": problem, "message": problem})
                    return
                assert isinstance(req, dict)
                m.requests[ref] = req
                url = self.headers.get("X-Callback-Url")
                if url and not m.lose_callbacks:
                    threading.Thread(target=m.call_back, args=(ref, url), daemon=True).start()
                self._send(202)
            else:
                self._send(404, {"message": "not found"})

        def do_GET(self) -> None:
            if not self._subscribed() or not self._authorised():
                return
            prefix = "/collection/v1_0/requesttopay/"
            ref = self.path[len(prefix):] if self.path.startswith(prefix) else ""
            if ref not in m.requests:
                self._send(404, {"code": "RESOURCE_NOT_FOUND"})
                return
            self._send(200, m.result(ref))

    return Handler
