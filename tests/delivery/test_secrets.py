"""Secrets at rest and at start-up (issue 17).

`sts fleet ami --state-dir` keeps the meters' decoder keys: owner-only files, and a file
group or others may read is refused with the fix.  `sts serve` and `sts deliver` are run as
processes with a distinct secret planted in every setting (database password, broker
password, SMS gateway credential, SMTP password, PIN, KEK); no log line, no output and no
file they write contains any of them, while each secret demonstrably did its job.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from sts.delivery.ami_fleet import AmiFleet, read_passwords
from sts.delivery.config import MqttEndpoint
from sts.errors import InsecureFile
from sts.vending import outbox
from sts.vending.storage.database import sqlite_path
from tests.delivery.helpers import meter_file
from tests.fixtures import Demo
from tests.support.carriers import Gateway
from tests.support.server import free_port
from tests.support.tlsrig import Authority, SecureBroker
from tests.support.waiting import wait_for

STS = str(Path(sys.executable).parent / "sts")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- data at rest --------------------------------------------------------------------------------


def test_fleet_state_files_are_owner_only(demo: Demo, tmp_path: Path) -> None:
    pans = demo.meters[:2]
    meters = meter_file(demo.service, tmp_path, pans)
    state = tmp_path / "state"
    old = os.umask(0o022)  # the usual umask: what was written 0644 before
    try:
        fleet = AmiFleet.load(MqttEndpoint("127.0.0.1", 1), meters, state_dir=str(state))
        am = fleet.meters[pans[0]]
        am.answered["1"] = b"{}"
        am.save()
    finally:
        os.umask(old)
    assert mode(state) == 0o700
    files = sorted(state.iterdir())
    assert {f.name for f in files} >= {f"{pans[0]}.json", f"{pans[0]}.ami.json",
                                       f"{pans[1]}.json"}
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert "decoder_key" in (state / f"{pans[0]}.json").read_text() or \
        (state / f"{pans[0]}.json").stat().st_size > 0
    # a state file others may read (written by an older version, or copied carelessly)
    (state / f"{pans[1]}.json").chmod(0o644)
    with pytest.raises(InsecureFile) as err:
        AmiFleet.load(MqttEndpoint("127.0.0.1", 1), meters, state_dir=str(state))
    assert "chmod 600" in err.value.message and err.value.code == "insecure_file"
    res = subprocess.run([STS, "fleet", "ami", "--broker", "mqtt://127.0.0.1:1", "--meters",
                          meters, "--state-dir", str(state)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 3 and "insecure_file" in res.stderr and "chmod 600" in res.stderr
    (state / f"{pans[1]}.json").chmod(0o600)
    (state / f"{pans[0]}.ami.json").chmod(0o640)
    with pytest.raises(InsecureFile):
        AmiFleet.load(MqttEndpoint("127.0.0.1", 1), meters, state_dir=str(state))
    # the per-meter broker passwords too
    pw = tmp_path / "meters.passwords"
    pw.write_text(f"{pans[0]}:secret\n")
    pw.chmod(0o644)
    with pytest.raises(InsecureFile):
        read_passwords(str(pw))
    pw.chmod(0o600)
    assert read_passwords(str(pw)) == {pans[0]: "secret"}


# --- secrets at start-up ---------------------------------------------------------------------------


class Smtp:
    """An SMTP server that insists on the planted user name and password."""

    def __init__(self, user: str, password: str) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.password = password
        self.got: list[Any] = []
        box = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                box.got.append(envelope)
                return "250 OK"

        def check(server: Any, session: Any, envelope: Any, mechanism: str,
                  data: Any) -> AuthResult:
            return AuthResult(success=isinstance(data, LoginPassword)
                              and data.login == user.encode()
                              and data.password == password.encode())

        self.port = free_port()
        self.ctl = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                              authenticator=check, auth_required=True,
                              auth_require_tls=False)
        self.ctl.start()


@pytest.fixture
def smtp_server() -> Iterator[Smtp]:
    box = Smtp("tokens", "smtp-pw-" + uuid.uuid4().hex[:12])
    yield box
    box.ctl.stop()


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


class Proc:
    """`sts ...` as its own process group, output to a file in the run directory."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, name: str) -> None:
        self.out = cwd / f"{name}.out"
        with open(self.out, "ab") as out:
            self.p = subprocess.Popen([STS, *args], cwd=cwd, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


@pytest.mark.slow
def test_no_secret_is_printed_logged_or_written(demo: Demo, settings: Any, gateway: Gateway,
                                                smtp_server: Smtp, tmp_path: Path) -> None:
    pan = demo.meters[0]
    kek = Path(settings.kek_file).read_text().strip()
    secrets = {
        "broker password": "broker-pw-" + uuid.uuid4().hex[:12],
        "SMS gateway credential": "sms-key-" + uuid.uuid4().hex[:12],
        "SMTP password": smtp_server.password,
        "PIN": "pin-" + uuid.uuid4().hex[:12],
        "KEK": kek,
    }
    db_url = settings.db_url
    if db_url.startswith("postgresql"):  # (the test server trusts any password)
        secrets["database password"] = "db-pw-" + uuid.uuid4().hex[:12]
        db_url = _with_password(db_url, secrets["database password"])
    # the broker as deploy/mosquitto sets it up, and the meter on it
    pki = Authority(tmp_path / "pki", "secrets-ca")
    rig = pki.issue("rig")
    meter_pw = "meter-pw-" + uuid.uuid4().hex[:8]
    broker = SecureBroker(tmp_path / "broker", pki,
                          {"sts-dispatcher": secrets["broker password"], pan: meter_pw}).start()
    tls = f"ca_file={pki.file}&cert_file={rig.cert}&key_file={rig.key}"
    fleet = AmiFleet.load(MqttEndpoint("127.0.0.1", broker.port, True, None, None,
                                       str(pki.file), str(rig.cert), str(rig.key)),
                          meter_file(demo.service, tmp_path, [pan]),
                          state_dir=str(tmp_path / "fleet"), passwords={pan: meter_pw})
    fleet.start()
    config = tmp_path / "delivery.toml"  # (an input: outside the directory scanned)
    config.write_text(
        "[retry]\nbase = 0.05\nmax_delay = 0.5\n[dispatch]\npoll = 0.05\nlease = 2.0\n"
        "[ami]\nanswer_timeout = 2.0\nreconnect_max = 1.0\n"
        f'[sms]\nurl = "{gateway.url}"\nauth = "Bearer {secrets["SMS gateway credential"]}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")} | {
        "STS_DB_URL": db_url, "STS_KEK": kek, "STS_PKCS11_PIN": secrets["PIN"],
        "STS_AMI_BROKER": f"mqtts://sts-dispatcher:{quote(secrets['broker password'])}"
                          f"@127.0.0.1:{broker.port}?{tls}",
        "STS_SMTP_URL": f"smtp://tokens:{quote(secrets['SMTP password'])}"
                        f"@127.0.0.1:{smtp_server.port}?from=tokens@utility.example",
        "STS_DELIVERY_CONFIG": str(config), "STS_LOOKUP_LIMIT": "100000",
    }
    run = tmp_path / "run"  # the processes' working directory: everything in it is scanned
    run.mkdir()
    deliver = [{"channel": "sms", "to": "+27825550101"},
               {"channel": "email", "to": "ann@example.org"}]

    def delivered(pid: str) -> bool:
        with demo.service.db.read() as conn:
            jobs = {j["channel"]: j["status"] for j in outbox.for_request(conn, pid)}
        return jobs == {"ami": "accepted", "sms": "delivered", "email": "delivered"}

    port = free_port()
    server = Proc(["serve", "--demo", "--port", str(port), "--log-level", "debug"], env, run,
                  "serve")
    try:
        def up() -> bool:
            assert server.p.poll() is None, server.out.read_text()[-2000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 120, "sts serve up")
        pid = str(uuid.uuid4())
        r = httpx.post(f"http://127.0.0.1:{port}/v1/purchases/{pid}", headers=demo.h("vendor"),
                       json={"meter": pan, "amount": "10", "deliver": deliver}, timeout=30)
        assert r.status_code == 201, r.text
        wait_for(lambda: delivered(pid), 60, "the sale delivered by sts serve")
    finally:
        server.stop()
    # the separate dispatcher, and the operator's commands
    pid2 = str(uuid.uuid4())
    assert demo.buy(pan, "10", pid=pid2, deliver=deliver).status_code == 201
    runner = Proc(["deliver", "run"], env, run, "deliver-run")
    try:
        wait_for(lambda: delivered(pid2), 60, "the sale delivered by sts deliver run")
    finally:
        runner.stop()
        fleet.stop()
        broker.stop()
    for args, name in ((["deliver", "list", "--json"], "list"),
                       (["deliver", "show", pid2], "show"),
                       (["deliver", "list", "--status", "nonsense"], "error")):
        Proc(args, env, run, f"deliver-{name}").p.wait(timeout=60)
    # each secret did its job
    assert any(h.get("Authorization") == f"Bearer {secrets['SMS gateway credential']}"
               for h in (req["headers"] for req in gateway.requests))
    assert len(smtp_server.got) == 2
    started = (run / "serve.out").read_text()
    assert "serving on" in started and "demo skipped" in started
    if "database password" in secrets:
        assert "postgres:***@" in started
    assert ":***@127.0.0.1" in (run / "deliver-run.out").read_text()
    # and none of them is anywhere the processes wrote
    written: dict[str, bytes] = {str(p): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    if settings.db_url.startswith("postgresql"):
        written["database"] = _database_text(demo)
    else:
        db_file = sqlite_path(settings.db_url)
        assert db_file is not None
        for p in db_file.parent.glob(db_file.name + "*"):
            written[str(p)] = p.read_bytes()
    assert len(written) >= 6
    for where, data in written.items():
        for name, secret in secrets.items():
            for form in {secret, quote(secret), quote(secret, safe="")}:
                assert form.encode() not in data, f"the {name} is in {where}"


def _database_text(demo: Demo) -> bytes:
    from sqlalchemy import text

    rows = []
    with demo.service.db.read() as conn:
        for table in ("deliveries", "delivery_attempts", "audit_log"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                rows.append(json.dumps([str(v) for v in row]))
    return "\n".join(rows).encode()
