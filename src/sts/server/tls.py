"""TLS on `sts serve`'s listener: the server certificate, TLS 1.2 as the oldest protocol, and,
with a client CA, mutual TLS.

A client CA makes the server ask every client for a certificate (CERT_OPTIONAL): one that is
presented must verify against the CA and be within its validity, or the handshake fails; a
client without one (a browser on the web pages) still connects, and the faces that authenticate
by certificate (Electrum, XMLVend) then find none.  The verified certificate reaches the app
as the ASGI TLS extension (`scope["extensions"]["tls"]`), filled in per connection by
`TlsH11Protocol`; `sts.http.tls` reads it.

Everything handed to uvicorn here is importable by name, so `--workers N` processes (spawned)
build the same context.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol

from sts.errors import ConfigError

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}  # as the ASGI TLS extension numbers them


@dataclass(frozen=True)
class TlsOptions:
    cert: str | None = None  # PEM: the server certificate (and its chain)
    key: str | None = None  # PEM: its private key (default: in the certificate file)
    client_ca: str | None = None  # PEM: the CA(s) client certificates must verify against

    @property
    def on(self) -> bool:
        return self.cert is not None

    def check(self) -> None:
        """Refuse a half or unreadable setup before any process starts."""
        if self.cert is None:
            if self.key is not None or self.client_ca is not None:
                raise ConfigError("--tls-key and --tls-client-ca need --tls-cert",
                                  field="tls_cert")
            return
        for field, path in (("tls_cert", self.cert), ("tls_key", self.key),
                            ("tls_client_ca", self.client_ca)):
            if path is not None and not os.access(path, os.R_OK):
                raise ConfigError(f"cannot read {path}", field=field)
        try:
            build_context(self.cert, self.key, self.client_ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"the TLS certificate, key or client CA does not load (the key "
                              f"must be an unencrypted PEM key): "
                              f"{getattr(exc, 'reason', None) or exc}", field="tls_cert") from None

    def uvicorn_options(self) -> dict[str, Any]:
        if self.cert is None:
            return {}
        return {"ssl_certfile": self.cert, "ssl_keyfile": self.key,
                "ssl_ca_certs": self.client_ca,
                "ssl_cert_reqs": ssl.CERT_OPTIONAL if self.client_ca else ssl.CERT_NONE,
                "ssl_context_factory": context_factory,
                "http": "sts.server.tls:TlsH11Protocol"}


def build_context(cert: str, key: str | None, client_ca: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = MINIMUM_VERSION
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    # an encrypted key fails here instead of OpenSSL prompting on a terminal there is none of
    ctx.load_cert_chain(cert, key, password=lambda: b"")
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def context_factory(config: Config, _default: Any) -> ssl.SSLContext:
    """uvicorn's `ssl_context_factory`: our context from the config's file names."""
    assert config.ssl_certfile is not None
    return build_context(str(config.ssl_certfile),
                         str(config.ssl_keyfile) if config.ssl_keyfile else None,
                         str(config.ssl_ca_certs) if config.ssl_ca_certs else None)


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> dict[str, Any]:
    """The ASGI TLS extension of one connection (the client's leaf certificate only: the
    verified chain is not exposed by Python's ssl before 3.13)."""
    der = ssl_object.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    name = None
    if der:
        from cryptography import x509

        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    cipher = ssl_object.cipher()
    return {"server_cert": None, "client_cert_chain": chain, "client_cert_name": name,
            "client_cert_error": None,
            "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
            "cipher_suite": None, "sts_cipher": cipher[0] if cipher else None}


class TlsH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with the connection's TLS facts in every request's scope."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        tls = tls_extension(ssl_object)
        app = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
            await app(scope, receive, send)

        self.app = with_tls
