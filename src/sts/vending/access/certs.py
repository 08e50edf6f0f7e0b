"""Client certificates as credentials are bound to them: the hex SHA-256 of the DER form (what
`openssl x509 -outform DER | sha256sum` prints), from a fingerprint typed with or without
colons or from a PEM file."""

from __future__ import annotations

import hashlib
import re
import ssl

from sts.errors import InputError

FINGERPRINT = re.compile(r"[0-9a-f]{64}")


def check_fingerprint(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip().lower().replace(":", "")
    if not FINGERPRINT.fullmatch(text):
        raise InputError("a certificate fingerprint is the SHA-256 of its DER form: 64 hex "
                         "digits (colons allowed)", field="cert_sha256")
    return text


def fingerprint_of_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def fingerprint_of_pem(pem: str, *, field: str = "cert_file") -> str:
    """The fingerprint of the first certificate in a PEM text."""
    start = pem.find("-----BEGIN CERTIFICATE-----")
    end = pem.find("-----END CERTIFICATE-----", start)
    if start < 0 or end < 0:
        raise InputError("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
                         field=field)
    try:
        der = ssl.PEM_cert_to_DER_cert(pem[start:end + len("-----END CERTIFICATE-----")])
    except ValueError:
        raise InputError("the PEM certificate is not valid base64", field=field) from None
    return fingerprint_of_der(der)
