"""Virtual AMI meters: `sts fleet ami`.  Each meter (the sans-IO `sts.meter.Meter`) is its
own MQTT endpoint with its own client id and persistent session, subscribed to its tokens
topic; it enters each message's tokens in order, publishes its answer and saves its state.

Thousands of meters run in one process and one thread: every client's socket sits in one
selector and paho is driven from it (loop_read / loop_write / loop_misc), so there is no
thread per meter.  A meter answers each message id once; a duplicate (QoS 1 redelivery, or
the server sending again after a lost answer) gets the stored answer, so no token is ever
entered twice by the transport.  Answered ids are kept beside the state file.

The state files hold the meters' decoder keys: they are written owner-only (0600, in a 0700
directory when it is made here) and an existing one that group or others may read is refused
(`InsecureFile`, naming the fix).  With `passwords` each meter logs in as its own account
(user name = its PAN), as on a broker configured per deploy/mosquitto; a message the meter
cannot use is logged and left, never allowed to stop the one thread all meters share.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import ssl
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from sts.delivery import topics
from sts.delivery.ami_mqtt import configure_client, session_properties, shown_topic
from sts.delivery.config import MqttEndpoint
from sts.delivery.ratelog import RateLimitedLog
from sts.errors import ConfigError, InsecureFile, StsError
from sts.meter import store
from sts.meter.clock import iso, to_seconds
from sts.meter.fleet import Fleet
from sts.meter.machine import Meter

log = logging.getLogger("sts.delivery.fleet")
_bad = RateLimitedLog(log)
REMEMBER = 256  # answered message ids kept per meter
KEEP = ("result", "code", "display", "amount", "unit", "register", "message")
Report = Callable[[dict[str, Any]], None]


class AmiMeter:
    """One meter's endpoint state: its client, the answers it has given, where it saves."""

    def __init__(self, pan: str, meter: Meter, clock: Any, state_dir: Path | None) -> None:
        self.pan = pan
        self.meter = meter
        self.clock = clock
        self.state_dir = state_dir
        self.answered: OrderedDict[str, bytes] = OrderedDict()
        self.client: mqtt.Client | None = None
        self.next_try = 0.0
        self.delay = 0.5
        if state_dir is not None:
            seen = state_dir / f"{pan}.ami.json"
            if seen.exists():
                check_private(seen)
                for mid, answer in json.loads(seen.read_text()):
                    self.answered[mid] = answer.encode()

    def handle(self, payload: bytes, now: float) -> tuple[bytes, dict[str, Any]] | None:
        """The answer to one tokens message (None for a message without an id)."""
        doc = topics.decode(payload)
        if doc is None or not isinstance(doc.get("id"), str) or len(doc["id"]) > 64:
            _bad.warning("meter %s: ignored a malformed tokens message", self.pan)
            return None
        mid = doc["id"]
        old = self.answered.get(mid)
        if old is not None:
            return old, {"meter": self.pan, "id": mid, "duplicate": True}
        self.clock.t = max(self.clock.t, now)
        results: list[dict[str, Any]] = []
        toks = doc.get("tokens")
        for n, tok in enumerate(toks if isinstance(toks, list) else []):
            text = tok.get("token") if isinstance(tok, dict) else None
            try:
                r = self.meter.enter(str(text)).as_dict()
                r.pop("lcd", None)
                r.pop("events", None)
            except StsError as exc:
                r = {"result": "format", "code": 6, "display": "Reject", "message": exc.message}
            keep: dict[str, Any] = {k: r[k] for k in KEEP if k in r}
            keep["position"] = n
            keep["token_status"] = topics.RESULT_STATUS.get(str(r.get("result")),
                                                            "TOKEN_EXECUTION_RESULT_FAILURE")
            results.append(keep)
        self.meter.events.clear()
        answer = {"v": topics.VERSION, "id": mid, "purchase_id": doc.get("purchase_id"),
                  "meter": self.pan, "at": iso(self.clock.t),
                  "token_status": results[-1]["token_status"] if results else
                  "TOKEN_FORMAT_FAILURE", "results": results}
        raw = json.dumps(answer, separators=(",", ":")).encode()
        self.answered[mid] = raw
        while len(self.answered) > REMEMBER:
            self.answered.popitem(last=False)
        self.save()
        return raw, answer

    def save(self) -> None:
        """State, then the answered ids, each written whole and renamed into place before
        the answer goes out.  No fsync: a killed fleet process loses nothing (the kernel
        keeps the pages), and a rig of thousands of meters must not fsync per token."""
        if self.state_dir is None:
            return
        _replace(self.state_dir / f"{self.pan}.json", store.encode(self.meter.state.to_json()))
        seen = json.dumps([[k, v.decode()] for k, v in self.answered.items()])
        _replace(self.state_dir / f"{self.pan}.ami.json", seen.encode())


def _replace(path: Path, data: bytes) -> None:
    """Write `path` whole, owner-only (it may hold a decoder key), whatever the umask."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover tmp file of this pid keeps its old mode otherwise
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def check_private(path: Path) -> None:
    """Refuse a secret-holding file that group or others may read or write."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", field="state_dir") from None
    if mode & 0o077:
        raise InsecureFile(
            f"{path} may be read by group or others (mode {mode:04o}) and holds secrets: "
            f"make it owner-only (chmod 600 {path}; for a state directory: chmod 700 DIR && "
            f"chmod 600 DIR/*.json), and treat what it held as exposed", field="state_dir")


def read_passwords(path: str) -> dict[str, str]:
    """Per-meter broker passwords: one `PAN:password` a line (the input format of
    `mosquitto_passwd -U`); the file must be owner-only."""
    check_private(Path(path))
    out: dict[str, str] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pan, sep, password = line.partition(":")
        if not sep or not password:
            raise ConfigError(f"{path} line {n} is not PAN:password", field="passwords")
        out[pan.strip()] = password
    return out


class AmiFleet:
    """Many AMI meters on one broker, driven by one selector thread."""

    def __init__(self, endpoint: MqttEndpoint, meters: dict[str, AmiMeter], *,
                 passwords: dict[str, str] | None = None, keepalive: int = 30,
                 report: Report | None = None) -> None:
        self.endpoint = endpoint
        self.host, self.port = endpoint.host, endpoint.port
        self.meters = meters
        self.passwords = passwords
        if passwords is not None:
            missing = sorted(set(meters) - set(passwords))
            if missing:
                raise ConfigError(f"no broker password for meter {missing[0]} "
                                  f"({len(missing)} missing)", field="passwords")
        self._context = endpoint.ssl_context() if endpoint.tls else None
        self.keepalive = keepalive
        self.report = report
        self._refusals = RateLimitedLog(log)
        self.sel = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.handled = 0
        self.connected: set[str] = set()
        self._lock = threading.Lock()

    # --- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, endpoint: MqttEndpoint, meters_file: str, *, state_dir: str | None = None,
             tables_file: str | None = None, only: set[str] | None = None,
             **kw: Any) -> AmiFleet:
        """Meters from a JSON Lines meter file (`sts admin meter export-sim`), each resumed
        from `<state_dir>/<pan>.json` when that exists."""
        fleet = Fleet.from_path(meters_file, tables_file=tables_file)
        sdir = Path(state_dir) if state_dir else None
        if sdir is not None:
            sdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = to_seconds(datetime.now())
        out: dict[str, AmiMeter] = {}
        for pan in list(fleet.pending):
            if only is not None and pan not in only:
                continue
            state_file = sdir / f"{pan}.json" if sdir is not None else None
            if state_file is not None and state_file.exists():
                check_private(state_file)
                fleet.pending.pop(pan)
                fleet.add_state(pan, store.load_state(state_file, tables_file))
                meter = fleet.meters[pan]
            else:
                built = fleet.meter(pan, now)
                assert built is not None
                meter = built
            am = AmiMeter(pan, meter, fleet.clocks[pan], sdir)
            if state_file is not None and not state_file.exists():
                am.save()
            out[pan] = am
        return cls(endpoint, out, **kw)

    # --- the loop ------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sts-ami-fleet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _client(self, am: AmiMeter) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sts-meter-{am.pan}",
                        protocol=mqtt.MQTTv5, userdata=am)
        end = self.endpoint
        if self.passwords is not None:  # each meter its own account, named by its PAN
            end = replace(end, username=am.pan, password=self.passwords[am.pan])
        configure_client(c, end, self._context)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_socket_open = self._sock_open
        c.on_socket_close = self._sock_close
        c.on_socket_register_write = self._want_write
        c.on_socket_unregister_write = self._no_write
        return c

    def _run(self) -> None:
        for am in self.meters.values():
            am.client = self._client(am)
        last_misc = last_connect = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if len(self.connected) < len(self.meters) and now - last_connect >= 0.1:
                    last_connect = now  # (a walk over every meter: not on every event)
                    self._connect_due(now)
                for key, mask in self.sel.select(timeout=0.05):
                    client: mqtt.Client = key.data
                    if mask & selectors.EVENT_READ:
                        client.loop_read(100)
                        sock = client.socket()  # TLS: records already decrypted and waiting
                        while isinstance(sock, ssl.SSLSocket) and sock.pending():
                            client.loop_read(100)
                            sock = client.socket()
                    if mask & selectors.EVENT_WRITE:
                        client.loop_write()
                if now - last_misc >= 0.5:
                    last_misc = now
                    for am in self.meters.values():
                        if am.client is not None and am.pan in self.connected:
                            am.client.loop_misc()
        finally:
            for am in self.meters.values():
                if am.client is not None and am.pan in self.connected:
                    am.client.disconnect()
                    am.client.loop_write()
                if am.client is not None:
                    sock = am.client.socket()
                    if sock is not None:
                        self._unregister(sock)
                        am.client.loop_misc()
            self.connected.clear()

    def _connect_due(self, now: float) -> None:
        for am in self.meters.values():
            if am.pan in self.connected or am.next_try > now or am.client is None:
                continue
            if am.client.socket() is not None:
                continue  # connecting
            try:
                am.client.connect(self.host, self.port, keepalive=self.keepalive,
                                  clean_start=False, properties=session_properties())
                am.delay = 0.5
            except (OSError, ValueError):  # (ssl.SSLError is an OSError)
                am.next_try = now + am.delay
                am.delay = min(am.delay * 2, 5.0)

    # --- paho callbacks --------------------------------------------------------------------------

    def _sock_open(self, client: mqtt.Client, am: AmiMeter, sock: Any) -> None:
        self._unregister(sock)
        self.sel.register(sock, selectors.EVENT_READ, client)

    def _sock_close(self, client: mqtt.Client, am: AmiMeter, sock: Any) -> None:
        self._unregister(sock)

    def _unregister(self, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)

    def _want_write(self, client: mqtt.Client, am: AmiMeter, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)

    def _no_write(self, client: mqtt.Client, am: AmiMeter, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(sock, selectors.EVENT_READ, client)

    def _on_connect(self, client: mqtt.Client, am: AmiMeter, _flags: Any,
                    reason: ReasonCode, _props: Any) -> None:
        if reason.is_failure:
            am.next_try = time.monotonic() + am.delay
            return
        with self._lock:
            self.connected.add(am.pan)
        client.subscribe(topics.tokens_topic(am.pan), qos=1)
        online = {"v": topics.VERSION, "meter": am.pan, "online": True,
                  "at": iso(to_seconds(datetime.now()))}
        client.publish(topics.online_topic(am.pan), json.dumps(online), qos=1)

    def _on_disconnect(self, client: mqtt.Client, am: AmiMeter, _flags: Any,
                       reason: ReasonCode, _props: Any) -> None:
        with self._lock:
            self.connected.discard(am.pan)
        am.next_try = time.monotonic() + am.delay

    def _on_message(self, client: mqtt.Client, am: AmiMeter, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic != topics.tokens_topic(am.pan):
                self._refusals.warning("meter %s: ignored a message on %s", am.pan,
                                       shown_topic(msg.topic))
                return
            out = am.handle(bytes(msg.payload), to_seconds(datetime.now()))
        except Exception:  # one meter's message must not stop every meter's thread
            log.exception("meter %s: a tokens message could not be handled", am.pan)
            return
        if out is None:
            return
        raw, info = out
        client.publish(topics.status_topic(am.pan), raw, qos=1)
        self.handled += 1
        if self.report is not None:
            self.report(info)


def raise_fd_limit(want: int) -> None:
    """Thousands of meters need thousands of sockets: lift the soft limit towards `want`."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, want))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
