"""AMI push over MQTT (paho-mqtt 2, MQTT 5): the dispatcher's side of the topic tree in
`sts.delivery.topics`.

One client per dispatcher, with a persistent session (clean start off, a week's session
expiry), so status messages that meters publish while the server is down wait at the broker.
Tokens go at QoS 1 and count as `sent` when the broker acknowledges them (PUBACK); the
meter's persistent session holds them while it is offline.  Incoming status and online
messages are acknowledged only after the dispatcher has stored them (manual ack), so a
crash between the two gets them again rather than losing them.

Whatever can publish to the broker is treated as hostile: every inbound message is bounded
(`topics.parse`: size, nesting, encoding), and one that is not ours is logged (rate-limited,
never its content) and acknowledged at once, so the broker does not send it again.  Nothing
a message contains can stop the network thread; should that thread die anyway, `watch`
(called by the dispatcher's loop) notices and starts a new client on the same session.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from sts.delivery import topics
from sts.delivery.carriers import Accepted, CarrierError, Outcome
from sts.delivery.config import AmiConfig, MqttEndpoint
from sts.delivery.messages import receipt_no
from sts.delivery.ratelog import RateLimitedLog
from sts.vending.outbox import Job

log = logging.getLogger("sts.delivery.ami")
SESSION_EXPIRY = 7 * 24 * 3600
# the broker drops (as if delivered) anything bigger for us, so paho never buffers a huge
# packet; between topics.MAX_PAYLOAD and this, our own check refuses it
MAX_PACKET = 256 * 1024
RESTART_MAX = 60.0  # s: longest wait between restarts of a network thread that keeps dying

Ack = Callable[[], None]
StatusHandler = Callable[[str, dict[str, object], Ack], None]
OnlineHandler = Callable[[str, Ack], None]


def session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY
    props.MaximumPacketSize = MAX_PACKET
    return props


def configure_client(client: mqtt.Client, endpoint: MqttEndpoint,
                     context: ssl.SSLContext | None = None) -> None:
    """Credentials and TLS (mqtts://) of `endpoint` on a new client."""
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set_context(context or endpoint.ssl_context())


def shown_topic(topic: object) -> str:
    """A topic as it may appear in a log line: printable and short."""
    text = repr(topic)
    return text if len(text) <= 90 else text[:80] + "...'"


class AmiCarrier:
    channel = "ami"

    def __init__(self, config: AmiConfig, *, on_status: StatusHandler,
                 on_online: OnlineHandler) -> None:
        self.config = config
        self.on_status = on_status
        self.on_online = on_online
        self.endpoint = config.endpoint()
        self._context = self.endpoint.ssl_context() if self.endpoint.tls else None
        self._host, self._port = self.endpoint.host, self.endpoint.port
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._running = False
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._restart_at = 0.0
        self._restart_delay = 1.0
        self.restarts = 0  # network threads started again after one died
        self.refused = 0  # inbound messages that were not ours (logged, acknowledged)
        self._refusals = RateLimitedLog(log)
        self.client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.config.client_id,
                             protocol=mqtt.MQTTv5, manual_ack=True)
        configure_client(client, self.endpoint, self._context)
        client.max_inflight_messages_set(500)
        client.reconnect_delay_set(min_delay=1,
                                   max_delay=max(1, int(self.config.reconnect_max)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._running = True
            self._launch()

    def _launch(self) -> None:
        client = self.client
        client.connect_async(self._host, self._port, keepalive=self.config.keepalive,
                             clean_start=False, properties=session_properties())
        client.loop_start()
        # paho's network thread (it has no public handle): watched so a death is noticed
        self._thread = client._thread
        self._started = time.monotonic()

    def stop(self) -> None:
        with self._lock:
            self._running = False
            client = self.client
        client.disconnect()
        client.loop_stop()

    def alive(self) -> bool:
        """Whether the network thread runs (False after `stop`, or if it died)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def watch(self) -> bool:
        """Start a new client if the network thread died (a bug, or something this code did
        not foresee in a message); returns True when it did.  The new client resumes the
        same session, so unacknowledged messages come again.  Restarts of a thread that
        keeps dying back off, up to RESTART_MAX seconds apart."""
        with self._lock:
            if not self._running or self._thread is None or self._thread.is_alive():
                return False
            now = time.monotonic()
            if now < self._restart_at:
                return False
            if now - self._started > RESTART_MAX:
                self._restart_delay = 1.0  # it had run a good while: not a crash loop
            self._restart_at = now + self._restart_delay
            self._restart_delay = min(self._restart_delay * 2, RESTART_MAX)
            self.restarts += 1
            log.error("AMI: the MQTT network thread stopped unexpectedly; starting a new "
                      "client (restart %d)", self.restarts)
            self._connected.clear()
            sock = self.client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
            self.client = self._new_client()
            self._launch()
            return True

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object,
                    reason: ReasonCode, _props: object) -> None:
        if reason.is_failure:
            log.warning("AMI broker refused the connection: %s", reason)
            return
        # retained messages are not part of this protocol: none are replayed on subscribe
        opts = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        client.subscribe([(topics.STATUS_SUBSCRIPTION, opts),
                          (topics.ONLINE_SUBSCRIPTION, opts)])
        log.info("AMI broker connected (%s:%s%s)", self._host, self._port,
                 ", TLS" if self.endpoint.tls else "")

    def _on_subscribe(self, _client: mqtt.Client, _ud: object, _mid: int,
                      reasons: list[ReasonCode], _props: object) -> None:
        """Ready once the broker confirms the subscriptions (before that a new session
        would miss the meters' answers)."""
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.warning("AMI broker refused the subscriptions to the meters' answers (%s): "
                        "check the dispatcher's ACL", ", ".join(refused))
        self._connected.set()

    def _on_disconnect(self, _client: mqtt.Client, _ud: object, _flags: object,
                       reason: ReasonCode, _props: object) -> None:
        self._connected.clear()
        log.info("AMI broker disconnected: %s", reason)

    def _on_message(self, client: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        """Every inbound message ends here: handed on (acknowledged once stored) or refused
        (logged and acknowledged now).  Nothing escapes to paho, whose thread it would end."""
        mid, qos = msg.mid, msg.qos

        def ack() -> None:
            if qos > 0:
                client.ack(mid, qos)

        topic = "?"
        handed_on = False
        try:
            topic = msg.topic
            where = topics.pan_of(topic)
            if where is None:
                self._refuse(topic, "not a meter topic of this version")
            elif msg.retain:
                self._refuse(topic, "retained (this protocol has no retained messages)")
            elif where[1] not in ("status", "online"):
                self._refuse(topic, "not a status or online topic")
            else:
                doc = topics.parse(bytes(msg.payload))
                pan, leaf = where
                if leaf == "status":
                    self.on_status(pan, doc, ack)
                else:
                    self.on_online(pan, ack)
                handed_on = True
        except topics.Refused as exc:
            self._refuse(topic, exc.reason)
        except UnicodeDecodeError:
            self._refuse(topic, "topic is not UTF-8")
        except Exception:  # our own bug: it must not end the network thread
            log.exception("AMI: a message on %s could not be handled; dropped",
                          shown_topic(topic))
            self.refused += 1
        if not handed_on:
            with contextlib.suppress(Exception):
                ack()

    def _refuse(self, topic: object, reason: str) -> None:
        self.refused += 1
        self._refusals.warning("AMI: refused a message on %s: %s", shown_topic(topic), reason)

    # --- sending ------------------------------------------------------------------------

    def send(self, jobs: list[Job]) -> list[Outcome]:
        if not self._connected.is_set():
            down = CarrierError(f"AMI broker {self._host}:{self._port} is not connected",
                                down=True)
            return [down for _ in jobs]
        client = self.client
        infos = []
        for job in jobs:
            payload = topics.tokens_message(job.id, job.request_id, job.txn_kind, job.response,
                                            receipt_no(job.response))
            infos.append(client.publish(topics.tokens_topic(job.pan), payload, qos=1))
        deadline = time.monotonic() + self.config.publish_timeout
        out: list[Outcome] = []
        for info in infos:
            if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
                out.append(CarrierError(f"MQTT publish failed: {mqtt.error_string(info.rc)}",
                                        down=True))
                continue
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                out.append(CarrierError(f"MQTT publish failed: {exc}", down=True))
                continue
            if info.is_published():
                out.append(Accepted("sent", "broker acknowledged (QoS 1)"))
            else:
                out.append(CarrierError("the AMI broker did not acknowledge in time",
                                        down=True))
        return out
