"""AMI over mqtts:// (issue 17): TLS with a CA file, client certificates (mutual TLS) and
accounts, for the dispatcher and the virtual fleet, against Mosquitto started with the
operator's configuration in deploy/mosquitto (a throwaway CA made here).  The broker keeps
each meter to its own topics: no meter reads another's tokens or answers for another."""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sts.delivery import topics
from sts.delivery.ami_fleet import AmiFleet
from sts.delivery.ami_mqtt import configure_client
from sts.delivery.config import DeliveryConfig, MqttEndpoint, parse_mqtt_url
from sts.errors import ConfigError
from sts.vending import outbox
from tests.delivery.helpers import fast_config, meter_file, start_dispatcher
from tests.fixtures import Demo
from tests.support.tlsrig import Authority, SecureBroker
from tests.support.waiting import wait_for

PAN_A, PAN_B = "600727000000000009", "600727000000000017"
DISPATCHER = "sts-dispatcher"


@pytest.fixture
def pki(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "pki", "sts-test-ca")


@pytest.fixture
def secure_broker(tmp_path: Path, pki: Authority) -> Iterator[Callable[[dict[str, str]],
                                                                        SecureBroker]]:
    started: list[SecureBroker] = []

    def start(accounts: dict[str, str]) -> SecureBroker:
        b = SecureBroker(tmp_path / f"broker{len(started)}", pki, accounts).start()
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def endpoint(broker: SecureBroker, pki: Authority, client: Any, user: str | None = None,
             password: str | None = None) -> MqttEndpoint:
    return MqttEndpoint("127.0.0.1", broker.port, True, user, password, str(pki.file),
                        str(client.cert) if client else None, str(client.key) if client else None)


def try_connect(end: MqttEndpoint, client_id: str = "probe", timeout: float = 10) -> str:
    """"ok", or how the connection was refused (TLS, connection closed, CONNACK reason)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    got: dict[str, Any] = {}
    c.on_connect = lambda _c, _u, _f, rc, _p: got.setdefault("rc", rc)
    try:
        configure_client(c, end)
        c.connect(end.host, end.port, keepalive=10)
        deadline = time.monotonic() + timeout
        while "rc" not in got:
            if c.loop(0.1) != mqtt.MQTT_ERR_SUCCESS and "rc" not in got:
                return "closed"
            if time.monotonic() > deadline:
                return "no answer"
    except ssl.SSLError as exc:
        return f"tls: {type(exc).__name__}"
    except OSError as exc:
        return f"closed: {type(exc).__name__}"
    finally:
        c.disconnect()
    return "ok" if not got["rc"].is_failure else f"refused: {got['rc']}"


class Peer:
    """One MQTT client on the secure broker, recording what it receives."""

    def __init__(self, end: MqttEndpoint, client_id: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.disconnected = threading.Event()
        self.connected = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        configure_client(self.c, end)
        self.c.on_message = self._message
        self.c.on_connect = lambda *_: self.connected.set()
        self.c.on_disconnect = lambda *_: self.disconnected.set()
        self.c.connect(end.host, end.port, keepalive=10)
        self.c.loop_start()
        assert self.connected.wait(10)

    def _message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [p for _, p in self.got]

    def subscribe(self, *patterns: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *_: done.set()
        self.c.subscribe([(p, 1) for p in patterns])
        assert done.wait(10)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


# --- the URL and the settings ----------------------------------------------------------------


def test_mqtts_url_and_settings(tmp_path: Path, pki: Authority) -> None:
    cert = pki.issue("client")
    end = parse_mqtt_url(f"mqtts://d:p%40ss@broker.example?ca_file={pki.file}"
                         f"&cert_file={cert.cert}&key_file={cert.key}")
    assert (end.host, end.port, end.tls, end.username, end.password) == \
        ("broker.example", 8883, True, "d", "p@ss")
    assert (end.ca_file, end.cert_file, end.key_file) == (str(pki.file), str(cert.cert),
                                                          str(cert.key))
    assert "p@ss" not in repr(end)
    end.ssl_context()  # the files load
    path = tmp_path / "delivery.toml"
    path.write_text(f'[ami]\nbroker = "mqtts://broker.example:8884"\nusername = "{DISPATCHER}"\n'
                    f'password = "s3cret"\nca_file = "{pki.file}"\ncert_file = "{cert.cert}"\n'
                    f'key_file = "{cert.key}"\n')
    cfg = DeliveryConfig.load(str(path), env={})
    end = cfg.ami.endpoint()
    assert (end.port, end.username, end.password, end.cert_file) == \
        (8884, DISPATCHER, "s3cret", str(cert.cert))
    assert "s3cret" not in repr(cfg)
    for bad in (f"mqtt://h?ca_file={pki.file}",  # TLS files without TLS
                f"mqtts://h?key_file={cert.key}",  # a key without its certificate
                "mqtts://h?verify=0",  # no such option (nothing turns the checks off)
                f"mqtts://h?ca_file={tmp_path}/missing.pem",
                "http://h"):
        with pytest.raises(ConfigError):
            DeliveryConfig.load(None, env={"STS_AMI_BROKER": bad})


# --- who may connect ---------------------------------------------------------------------------


def test_tls_client_certificates_and_accounts(secure_broker: Any, pki: Authority,
                                              tmp_path: Path) -> None:
    broker = secure_broker({DISPATCHER: "dispatcher-pw", PAN_A: "meter-a-pw"})
    mine = pki.issue("rig")
    other_ca = Authority(tmp_path / "other", "not-our-ca")
    stranger = other_ca.issue("stranger")
    good = endpoint(broker, pki, mine, DISPATCHER, "dispatcher-pw")
    assert try_connect(good) == "ok"
    assert try_connect(replace(good, username=PAN_A, password="meter-a-pw")) == "ok"
    # the client trusts another CA: the broker's certificate is refused
    assert try_connect(replace(good, ca_file=str(other_ca.file))) == \
        "tls: SSLCertVerificationError"
    # no client certificate, or one from another CA: the broker refuses
    assert try_connect(replace(good, cert_file=None, key_file=None)) != "ok"
    assert try_connect(replace(good, cert_file=str(stranger.cert),
                               key_file=str(stranger.key))) != "ok"
    # a good certificate but no account, a wrong password, or an unknown user: the broker
    # answers "not authorised" (or, for no user name at all, closes the connection)
    assert try_connect(replace(good, username=None, password=None)).startswith(
        ("refused", "closed"))
    assert try_connect(replace(good, password="wrong")).startswith("refused")
    assert try_connect(replace(good, username=PAN_B)).startswith("refused")
    # plain MQTT to the TLS port gets nowhere
    assert try_connect(replace(good, tls=False, ca_file=None, cert_file=None,
                               key_file=None), timeout=5) != "ok"


def test_a_meter_reaches_only_its_own_topics(secure_broker: Any, pki: Authority) -> None:
    broker = secure_broker({DISPATCHER: "dispatcher-pw", PAN_A: "a-pw", PAN_B: "b-pw"})
    rig = pki.issue("rig")
    d = Peer(endpoint(broker, pki, rig, DISPATCHER, "dispatcher-pw"), "d")
    a = Peer(endpoint(broker, pki, rig, PAN_A, "a-pw"), "a")
    b = Peer(endpoint(broker, pki, rig, PAN_B, "b-pw"), "b")
    try:
        d.subscribe(topics.STATUS_SUBSCRIPTION)
        a.subscribe(topics.tokens_topic(PAN_A), "sts/v1/meters/+/tokens", "sts/v1/meters/#")
        b.subscribe(topics.tokens_topic(PAN_B))
        # tokens for B, then for A: A (subscribed to everything) gets only its own; the
        # broker keeps the order, so B's would have come first
        d.publish(topics.tokens_topic(PAN_B), b"tokens for B")
        d.publish(topics.tokens_topic(PAN_A), b"tokens for A")
        wait_for(lambda: b"tokens for A" in a.payloads(), 10, "A's tokens")
        wait_for(lambda: b"tokens for B" in b.payloads(), 10, "B's tokens")
        assert b"tokens for B" not in a.payloads()
        # A answers for B (dropped), then for itself (delivered)
        a.publish(topics.status_topic(PAN_B), b"forged status for B")
        a.publish(topics.status_topic(PAN_A), b"status of A")
        wait_for(lambda: b"status of A" in d.payloads(), 10, "A's status")
        assert b"forged status for B" not in d.payloads()
        # A sends B tokens (dropped; A had its acknowledgement before the real ones went)
        a.publish(topics.tokens_topic(PAN_B), b"forged tokens for B")
        d.publish(topics.tokens_topic(PAN_B), b"more tokens for B")
        wait_for(lambda: b"more tokens for B" in b.payloads(), 10, "B's second tokens")
        assert b"forged tokens for B" not in b.payloads()
        # A connecting with the dispatcher's client id does not take its session
        a2 = Peer(endpoint(broker, pki, rig, PAN_A, "a-pw"), DISPATCHER)
        a2.publish(topics.status_topic(PAN_A), b"status of A again")
        wait_for(lambda: b"status of A again" in d.payloads(), 10, "the dispatcher still on")
        assert not d.disconnected.is_set()
        a2.close()
        # a retained message is not part of the protocol: the broker disconnects the sender
        a.c.publish(topics.status_topic(PAN_A), b"retained", qos=1, retain=True)
        assert a.disconnected.wait(10)
    finally:
        for p in (a, b, d):
            p.close()


# --- the dispatcher and the fleet over TLS -------------------------------------------------------


def test_sale_over_mutual_tls(demo: Demo, secure_broker: Any, pki: Authority,
                              tmp_path: Path) -> None:
    pans = demo.meters[:2]
    passwords = {pan: f"pw-{pan[-4:]}-{uuid.uuid4().hex[:6]}" for pan in pans}
    broker = secure_broker({DISPATCHER: "dispatcher-pw", **passwords})
    rig = pki.issue("rig")
    # the fleet: one account per meter (its PAN), from an owner-only PAN:password file
    pw_file = tmp_path / "meters.passwords"
    pw_file.write_text("".join(f"{p}:{w}\n" for p, w in passwords.items()))
    pw_file.chmod(0o600)
    from sts.delivery.ami_fleet import read_passwords

    fleet = AmiFleet.load(endpoint(broker, pki, rig), meter_file(demo.service, tmp_path, pans),
                          state_dir=str(tmp_path / "state"), passwords=read_passwords(
                              str(pw_file)))
    fleet.start()
    # the dispatcher: TLS files in the URL, the account in the settings
    cfg = fast_config(f"{broker.url}?ca_file={pki.file}&cert_file={rig.cert}"
                      f"&key_file={rig.key}")
    cfg.ami.username, cfg.ami.password = DISPATCHER, "dispatcher-pw"
    disp = start_dispatcher(demo.service, cfg)
    try:
        wait_for(lambda: len(fleet.connected) == len(pans), 30, "the meters online over TLS")
        pids = []
        for pan in pans:
            pid = str(uuid.uuid4())
            assert demo.buy(pan, "10", pid=pid).status_code == 201
            pids.append(pid)

        def accepted() -> bool:
            with demo.service.db.read() as conn:
                return all(outbox.for_request(conn, p)[0]["status"] == "accepted"
                           for p in pids)

        wait_for(accepted, 30, "accepted over mutual TLS")
    finally:
        disp.stop()
        fleet.stop()
