"""AMI push over MQTT (paho-mqtt 2, MQTT 5): the dispatcher's side of the topic tree in
`sts.delivery.topics`.

One client per dispatcher, with a persistent session (clean start off, a week's session
expiry), so status messages that meters publish while the server is down wait at the broker.
Tokens go at QoS 1 and count as `sent` when the broker acknowledges them (PUBACK); the
meter's persistent session holds them while it is offline.  Incoming status and online
messages are acknowledged only after the dispatcher has stored them (manual ack), so a
crash between the two gets them again rather than losing them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from sts.delivery import topics
from sts.delivery.carriers import Accepted, CarrierError, Outcome
from sts.delivery.config import AmiConfig
from sts.delivery.messages import receipt_no
from sts.vending.outbox import Job

log = logging.getLogger("sts.delivery.ami")
SESSION_EXPIRY = 7 * 24 * 3600

Ack = Callable[[], None]
StatusHandler = Callable[[str, dict[str, object], Ack], None]
OnlineHandler = Callable[[str, Ack], None]


def session_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY
    return props


class AmiCarrier:
    channel = "ami"

    def __init__(self, config: AmiConfig, *, on_status: StatusHandler,
                 on_online: OnlineHandler) -> None:
        self.config = config
        self.on_status = on_status
        self.on_online = on_online
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id,
                                  protocol=mqtt.MQTTv5, manual_ack=True)
        host, port, user, password = config.endpoint()
        self._host, self._port = host, port
        if user:
            self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(500)
        self.client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(config.reconnect_max)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        self.client.connect_async(self._host, self._port, keepalive=self.config.keepalive,
                                  clean_start=False, properties=session_properties())
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object,
                    reason: ReasonCode, _props: object) -> None:
        if reason.is_failure:
            log.warning("AMI broker refused the connection: %s", reason)
            return
        client.subscribe([(topics.STATUS_SUBSCRIPTION, 1), (topics.ONLINE_SUBSCRIPTION, 1)])
        self._connected.set()
        log.info("AMI broker connected (%s:%s)", self._host, self._port)

    def _on_disconnect(self, _client: mqtt.Client, _ud: object, _flags: object,
                       reason: ReasonCode, _props: object) -> None:
        self._connected.clear()
        log.info("AMI broker disconnected: %s", reason)

    def _on_message(self, client: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        mid, qos = msg.mid, msg.qos

        def ack() -> None:
            if qos > 0:
                client.ack(mid, qos)

        where = topics.pan_of(msg.topic)
        doc = topics.decode(bytes(msg.payload))
        if where is None or doc is None:
            log.warning("AMI: ignored a malformed message on %s", msg.topic)
            ack()
            return
        pan, leaf = where
        if leaf == "status":
            self.on_status(pan, doc, ack)
        elif leaf == "online":
            self.on_online(pan, ack)
        else:
            ack()

    # --- sending ------------------------------------------------------------------------

    def send(self, jobs: list[Job]) -> list[Outcome]:
        if not self._connected.is_set():
            down = CarrierError(f"AMI broker {self._host}:{self._port} is not connected",
                                down=True)
            return [down for _ in jobs]
        infos = []
        for job in jobs:
            payload = topics.tokens_message(job.id, job.request_id, job.txn_kind, job.response,
                                            receipt_no(job.response))
            infos.append(self.client.publish(topics.tokens_topic(job.pan), payload, qos=1))
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
