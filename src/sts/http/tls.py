"""TLS as the faces see it: the client certificate of a mutual-TLS connection, read from the
ASGI TLS extension (`scope["extensions"]["tls"]`, which `sts serve` fills in from the
connection: `sts.server.tls`), and HSTS on every answer that went out over TLS.

A certificate there was verified by the server against its client CA during the handshake;
an unverifiable or expired one never gets that far.  Behind a TLS proxy that verifies client
certificates itself, `STS_CLIENT_CERT_HEADER` names the header it passes the certificate in
(URL-escaped PEM, or its hex SHA-256); set it only when every request comes through that proxy,
which must overwrite the header.
"""

from __future__ import annotations

import os
import ssl
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sts.vending.access.certs import fingerprint_of_der

HSTS_SECONDS = 31_536_000  # one year
ENV_CERT_HEADER = "STS_CLIENT_CERT_HEADER"


def fingerprint_in_header(value: str | None) -> str | None:
    """SHA-256 of the certificate a TLS proxy passed (URL-escaped PEM, or already a hex
    fingerprint); "invalid" for anything else, which matches no certificate."""
    if not value:
        return None
    text = unquote(value).strip()
    if "BEGIN CERTIFICATE" in text:
        try:
            return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(text.replace("\t", "\n")))
        except ValueError:
            return "invalid"
    hexed = text.lower().replace(":", "")
    return hexed if len(hexed) == 64 and all(c in "0123456789abcdef" for c in hexed) \
        else "invalid"


def client_cert_sha256(scope: Any, header: str | None = None) -> str | None:
    """SHA-256 (hex) of the client certificate of this request: from the proxy's `header`
    (default: $STS_CLIENT_CERT_HEADER) when one is named, else from the TLS connection."""
    header = header or os.environ.get(ENV_CERT_HEADER)
    if header:
        wanted = header.lower().encode("latin-1")
        for name, value in scope.get("headers") or ():
            if name == wanted:
                return fingerprint_in_header(value.decode("latin-1"))
        return None
    extensions = scope.get("extensions") or {}
    tls = extensions.get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    try:
        return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(chain[0]))
    except ValueError:
        return None


class StrictTransport:
    """`Strict-Transport-Security` on every answer to a request that came over TLS (directly,
    or through a proxy named in `--forwarded-allow-ips` that said so): browsers then refuse
    plain HTTP to this host for a year."""

    def __init__(self, app: ASGIApp, max_age: int = HSTS_SECONDS) -> None:
        self.app = app
        self.value = f"max-age={max_age}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_hsts(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"strict-transport-security"]
                message = {**message, "headers": [*headers,
                                                  (b"strict-transport-security", self.value)]}
            await send(message)

        await self.app(scope, receive, send_hsts)
