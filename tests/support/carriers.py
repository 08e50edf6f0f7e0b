"""Real parts for carrier tests, shared by the test packages that deliver tokens: a Mosquitto
broker on a free port (with persistence, so QoS 1 sessions survive a restart), an HTTP stand-in
for an SMS gateway, and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import pytest

from tests.fixtures import IN_CI
from tests.support.server import free_port
from tests.support.waiting import wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
# Started as root, Mosquitto changes to its own user, which cannot open the test's private
# temporary directory (no log, no persistence): under root it stays root.
RUN_AS = "user root\n" if os.geteuid() == 0 else ""


class Broker:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            f"log_dest file {directory}/mosquitto.log\n" + RUN_AS)

    def start(self) -> Self:
        if not os.path.exists(MOSQUITTO):
            if IN_CI:
                raise RuntimeError("CI run without mosquitto")
            pytest.skip("mosquitto not installed")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                assert self.proc is not None and self.proc.poll() is None, "mosquitto exited"
                return False

        wait_for(up, 10, "mosquitto to listen")
        return self

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions and queued messages, then exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
        self.proc = None


class Gateway:
    """An HTTP server standing in for an SMS gateway: it records each request (`requests`)
    and answers with the next scripted (status, body), then 200 for ever.  Like a real
    gateway it honours Idempotency-Key: a key already answered with a 2xx gets that answer
    again and sends nothing; `sent` holds the messages sent to phones (once per key, every
    keyless request)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.script: list[tuple[int, str]] = []
        self._answered: dict[str, tuple[int, str]] = {}  # idempotency key -> its 2xx answer
        self._lock = threading.Lock()
        gw = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    raw = self.rfile.read(length)
                except ConnectionResetError:
                    return
                if len(raw) < length:  # the sender died mid-request: nothing to answer or send
                    return
                body = raw.decode()
                request = {"path": self.path, "body": body, "headers": dict(self.headers)}
                key = self.headers.get("Idempotency-Key")
                with gw._lock:  # a repeat racing its first send still sends once
                    gw.requests.append(request)
                    earlier = gw._answered.get(key) if key else None
                    if earlier is not None:
                        status, text = earlier
                    else:
                        status, text = (gw.script.pop(0) if gw.script
                                        else (200, '{"status":"queued"}'))
                        if 200 <= status < 300:
                            gw.sent.append(request)
                            if key:
                                gw._answered[key] = (status, text)
                data = text.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender died waiting for the answer; it was recorded and sent

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.messages.append(envelope)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
