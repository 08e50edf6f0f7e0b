"""A sandbox SMS gateway on loopback: accepts the delivery carrier's JSON or form POSTs
(`to`, `text`) and keeps them in memory; `GET /` shows them newest first as a plain page (the
demo's phone), `GET /messages` as JSON.  For the demo and tests only."""

from __future__ import annotations

import html
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

MAX_MESSAGES = 500


@dataclass
class SmsInbox:
    messages: list[dict[str, str]] = field(default_factory=list)
    url: str = ""  # where to POST messages (the gateway URL)
    inbox_url: str = ""  # the page a person opens

    def start(self, port: int = 0) -> SmsInbox:
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url, self.inbox_url = base + "/sms", base + "/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, to: str, text: str) -> None:
        with self.lock:
            self.messages.append({"to": to, "text": text})
            del self.messages[:-MAX_MESSAGES]

    def to(self, phone: str) -> list[str]:
        """The texts sent to `phone` (with or without its +), oldest first."""
        want = phone.lstrip("+")
        with self.lock:
            return [m["text"] for m in self.messages if m["to"].lstrip("+") == want]


def _handler(inbox: SmsInbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), 65536)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            try:
                if "json" in (self.headers.get("Content-Type") or ""):
                    data = json.loads(raw)
                else:
                    data = {k: v[0] for k, v in parse_qs(raw).items()}
                to, text = str(data["to"]), str(data["text"])
            except (ValueError, KeyError, TypeError):
                self._send(400, b'{"error": "to and text are required"}', "application/json")
                return
            inbox.add(to, text)
            self._send(200, b'{"status": "accepted"}', "application/json")

        def do_GET(self) -> None:
            with inbox.lock:
                shown = list(reversed(inbox.messages))
            if self.path.startswith("/messages"):
                self._send(200, json.dumps(shown).encode(), "application/json")
                return
            rows = "".join(f"<li><b>{html.escape(m['to'])}</b><br>{html.escape(m['text'])}</li>"
                           for m in shown) or "<li>No messages yet.</li>"
            page = ("<!doctype html><meta charset=utf-8><meta name=viewport "
                    "content='width=device-width'><meta http-equiv=refresh content=3>"
                    "<title>Demo phone: SMS</title><h1>Demo phone: SMS received</h1>"
                    f"<ul>{rows}</ul>")
            self._send(200, page.encode(), "text/html; charset=utf-8")

    return Handler
