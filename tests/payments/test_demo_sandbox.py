"""The demo as a person runs it (`./run` = `sts serve --demo`), on SQLite and PostgreSQL: the
server starts the Daraja, MoMo and SMS sandbox stand-ins on loopback and prints where they
are; paying from /buy brings the token to the page and to the stand-in phone's inbox, and
"my tokens" sends its code to the demo customer's number on record."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def test_serve_demo_starts_the_sandbox_and_a_customer_can_pay(db_url: str,
                                                               tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STS_MPESA_", "STS_MOMO_", "STS_SMS_", "STS_DELIVERY_"))}
    kek = tmp_path / "kek.hex"
    kek.write_text(os.urandom(32).hex())
    kek.chmod(0o600)
    out = tmp_path / "demo.json"
    sts = Path(sys.executable).parent / "sts"
    with open(out, "wb") as stdout, open(tmp_path / "err.log", "wb") as stderr:
        proc = subprocess.Popen([str(sts), "serve", "--demo", "--json", "--db", db_url,
                                 "--kek-file", str(kek), "--port", str(port)],
                                stdout=stdout, stderr=stderr, env=env, start_new_session=True)
    try:
        def up() -> bool:
            try:
                return httpx.get(base + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None

        wait_for(up, 90, "the demo server")
        assert proc.poll() is None, (tmp_path / "err.log").read_text()
        info = json.loads(out.read_text())
        mm = info["mobile_money"]
        assert {"shortcode", "validation_url", "confirmation_url", "ussd_url",
                "buy_url"} <= set(mm)
        assert mm["buy_url"] == base + "/buy"
        inbox = mm["sandbox"]["sms_inbox"]
        assert all(url.startswith("http://127.0.0.1:") for url in mm["sandbox"].values())

        drn = info["meters"][0][6:17]
        paid = httpx.post(base + "/buy/pay", data={"meter": drn, "amount": "50",
                                                   "phone": "254700123456"})
        assert paid.status_code == 303, paid.text[:300]
        ticket = paid.headers["location"].rsplit("/", 1)[1]
        wait_for(lambda: 'data-testid="tokens"' in httpx.get(
            f"{base}/buy/status/{ticket}").text, 60, "the token on the page")
        token = re.search(r'class="token">([\d ]+)<',
                          httpx.get(f"{base}/buy/status/{ticket}").text)
        assert token is not None

        def texts() -> list[str]:
            return [m["text"] for m in httpx.get(inbox + "messages").json()]

        wait_for(lambda: any(token.group(1) in t for t in texts()), 60, "the token SMS")
        code = httpx.post(base + "/buy/mine/code", data={"meter": drn})
        assert code.status_code == 200 and "We sent a code to +254" in code.text
        assert any("Your code for meter" in t for t in texts())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
