"""Delivery settings: a TOML (or JSON) file named by `--delivery-config` / STS_DELIVERY_CONFIG,
with environment overrides for the common cases:

  STS_AMI_BROKER   mqtt://[user:password@]host:port      (AMI push; `sts serve --ami-broker`)
                   mqtts://[user:password@]host:8883?ca_file=ca.pem&cert_file=c.pem&key_file=k.pem
                   (TLS: the broker's certificate checked against ca_file, or the system's
                   CAs; cert_file/key_file: a client certificate for mutual TLS)
  STS_SMTP_URL     smtp://[user:password@]host:port?starttls=1&ssl=0&from=tokens@example.com
                   (&ca_file=/etc/ssl/internal-ca.pem to trust a private CA)
  STS_SMS_URL      https://gateway.example/send            (the rest from the file)

File sections: [retry] base, factor, max_delay, max_attempts, jitter; [dispatch] poll, lease,
batch; [ami] broker, client_id, answer_timeout, max_sends, keepalive,
publish_timeout, reconnect_max, username, password, ca_file, cert_file, key_file (the URL's
own values win); [sms] url, method,
format (json|form), auth ("Bearer ..." header value), username, password, fields (template of
the request body: each value a str.format template over to, text, sender, receipt_no,
purchase_id, meter), sender, ok_status (list of codes; default any 2xx), ok_contains,
timeout, templates (per language); [email] host, port, starttls, ssl, ca_file, username,
password, sender, timeout.  Secrets never appear in repr or logs.
"""

from __future__ import annotations

import json
import os
import random
import ssl
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sts.errors import ConfigError


@dataclass
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits base * factor**(n-1), at most
    max_delay, times a random factor in [1 - jitter, 1]; after max_attempts failed attempts a
    job is `failed` (an unreachable carrier only delays: it never fails a job)."""

    base: float = 5.0
    factor: float = 2.0
    max_delay: float = 600.0
    max_attempts: int = 8
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        raw = min(self.max_delay, self.base * self.factor ** max(0, attempt - 1))
        return raw * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True)
class MqttEndpoint:
    """Where and how to reach an MQTT broker.  With `tls` (mqtts://) the broker's
    certificate and host name are always checked, against `ca_file` or the system's CAs;
    `cert_file`/`key_file` present a client certificate (mutual TLS)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """The client's TLS context: TLS 1.2 or later, certificate and host name checked."""
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert_file:
                ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"the AMI broker's TLS files cannot be used ({exc})",
                              field="ami_broker") from None
        return ctx


@dataclass
class AmiConfig:
    broker: str = ""
    client_id: str = "sts-dispatcher"
    answer_timeout: float = 300.0  # s without the meter's answer before it is sent again
    max_sends: int = 12  # sends without an answer before the job fails
    keepalive: int = 30
    publish_timeout: float = 10.0
    reconnect_max: float = 10.0  # s: longest wait between reconnection attempts
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def endpoint(self) -> MqttEndpoint:
        return parse_mqtt_url(self.broker, username=self.username or None,
                              password=self.password or None, ca_file=self.ca_file or None,
                              cert_file=self.cert_file or None, key_file=self.key_file or None)


@dataclass
class SmsConfig:
    url: str = ""
    method: str = "POST"
    format: str = "json"
    auth: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    fields: dict[str, str] = field(default_factory=lambda: {"to": "{to}", "text": "{text}"})
    sender: str = "STS"
    ok_status: list[int] = field(default_factory=list)
    ok_contains: str = ""
    timeout: float = 10.0
    templates: dict[str, str] = field(default_factory=dict)


@dataclass
class EmailConfig:
    host: str = ""
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    ca_file: str = ""  # PEM bundle to trust instead of the system's (an internal CA)
    username: str = ""
    password: str = field(default="", repr=False)
    sender: str = "tokens@localhost"
    timeout: float = 10.0


@dataclass
class DeliveryConfig:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    ami: AmiConfig = field(default_factory=AmiConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    email: EmailConfig = field(default_factory=EmailConfig)
    poll: float = 0.2  # s between looks for due jobs when idle
    lease: float = 60.0  # s a claimed job is held; a killed dispatcher's jobs come back after
    batch: int = 200

    @classmethod
    def load(cls, path: str | None = None, *, env: dict[str, str] | None = None,
             ami_broker: str | None = None) -> DeliveryConfig:
        env = dict(os.environ) if env is None else env
        path = path or env.get("STS_DELIVERY_CONFIG") or None
        doc: dict[str, Any] = {}
        if path:
            doc = _read(path)
        cfg = cls()
        for name in ("poll", "lease", "batch"):
            if name in doc.get("dispatch", {}):
                setattr(cfg, name, doc["dispatch"][name])
        _fill(cfg.retry, doc.get("retry", {}), "retry")
        _fill(cfg.ami, doc.get("ami", {}), "ami")
        _fill(cfg.sms, doc.get("sms", {}), "sms")
        _fill(cfg.email, doc.get("email", {}), "email")
        if ami_broker or env.get("STS_AMI_BROKER"):
            cfg.ami.broker = ami_broker or env["STS_AMI_BROKER"]
        if env.get("STS_SMS_URL"):
            cfg.sms.url = env["STS_SMS_URL"]
        if env.get("STS_SMTP_URL"):
            _smtp_url(cfg.email, env["STS_SMTP_URL"])
        cfg.check()
        return cfg

    def check(self) -> None:
        if self.ami.broker:
            end = self.ami.endpoint()
            if end.tls:
                end.ssl_context()
        if self.sms.format not in ("json", "form"):
            raise ConfigError("sms.format must be json or form", field="sms.format")
        if self.sms.url and not self.sms.url.startswith(("http://", "https://")):
            raise ConfigError("sms.url must be an http(s) URL", field="sms.url")
        if self.retry.max_attempts < 1 or self.retry.base <= 0 or self.retry.factor < 1:
            raise ConfigError("retry needs max_attempts >= 1, base > 0, factor >= 1",
                              field="retry")
        if not 0 <= self.retry.jitter < 1:
            raise ConfigError("retry.jitter must be in [0, 1)", field="retry.jitter")
        if self.email.ca_file:
            try:
                ssl.create_default_context(cafile=self.email.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"email.ca_file {self.email.ca_file} is not a readable PEM "
                                  f"bundle ({exc})", field="email.ca_file") from None


def _read(path: str) -> dict[str, Any]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read delivery config {path}: {exc.strerror}",
                          field="delivery_config") from None
    try:
        doc = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"delivery config {path} is not valid ({exc})",
                          field="delivery_config") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"delivery config {path} must be a table", field="delivery_config")
    return doc


def _fill(target: Any, values: Any, section: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"[{section}] must be a table", field=section)
    known = {f.name: f for f in fields(target)}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"[{section}] has no setting {name!r}", field=f"{section}.{name}")
        current = getattr(target, name)
        if isinstance(current, bool) and not isinstance(value, bool):
            raise ConfigError(f"{section}.{name} must be true or false",
                              field=f"{section}.{name}")
        if isinstance(current, (int, float)) and not isinstance(current, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{section}.{name} must be a number", field=f"{section}.{name}")
            value = type(current)(value)
        setattr(target, name, value)


_TLS_FILES = ("ca_file", "cert_file", "key_file")


def parse_mqtt_url(url: str, *, username: str | None = None, password: str | None = None,
                   ca_file: str | None = None, cert_file: str | None = None,
                   key_file: str | None = None) -> MqttEndpoint:
    """mqtt://[user:password@]host[:1883] or mqtts://...host[:8883][?ca_file=&cert_file=
    &key_file=]; the keyword arguments are defaults the URL's own values override."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parts.hostname:
        raise ConfigError("the AMI broker must be mqtt://HOST:PORT or mqtts://HOST:PORT",
                          field="ami_broker")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ConfigError("the AMI broker port is not a number", field="ami_broker") from None
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(_TLS_FILES))
    if unknown:
        raise ConfigError(f"the AMI broker URL has no option {unknown[0]!r} (only "
                          f"{', '.join(_TLS_FILES)})", field="ami_broker")
    files = {"ca_file": ca_file, "cert_file": cert_file, "key_file": key_file}
    files.update({k: v for k, v in query.items() if v})
    if not tls and any(files.values()):
        raise ConfigError("ca_file, cert_file and key_file need an mqtts:// broker",
                          field="ami_broker")
    if files["key_file"] and not files["cert_file"]:
        raise ConfigError("key_file needs cert_file (the client certificate)",
                          field="ami_broker")
    if parts.username:
        username = unquote(parts.username)
        password = unquote(parts.password) if parts.password else None
    return MqttEndpoint(parts.hostname, port, tls, username, password, **files)


def _smtp_url(email: EmailConfig, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError("STS_SMTP_URL must be smtp://[user:password@]host:port[?...]",
                          field="smtp_url")
    q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    email.host = parts.hostname
    email.ssl = parts.scheme == "smtps" or q.get("ssl", "0") in ("1", "true")
    email.port = parts.port or (465 if email.ssl else 25)
    email.starttls = q.get("starttls", "0") in ("1", "true")
    if "ca_file" in q:
        email.ca_file = q["ca_file"]
    if parts.username:
        email.username = unquote(parts.username)
        email.password = unquote(parts.password or "")
    if "from" in q:
        email.sender = q["from"]
