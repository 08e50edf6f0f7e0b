"""API keys: `stsk_` plus 32 random bytes (URL-safe base64).

Only a key's SHA-256 is stored: the key has 256 bits of entropy, so a slow password hash would
add nothing.  Each key carries one role (`sts.vending.access.policy`); vendor keys (and
supervisor keys that sell) are bound to a vendor, whose float pays for sales.  This is the one
place an API key is checked: the REST face's dependency and the sale's own transaction (which
checks the key on its cursor, to spare a second connection) both call `check_key_row`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, select

from sts.errors import InputError, NotAuthenticated
from sts.vending.access.policy import ROLES, Caller
from sts.vending.storage.tables import api_keys

KEY_PREFIX = "stsk_"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}", field="role")
    return role


def bearer_key(header: str | None) -> str:
    if not header:
        raise NotAuthenticated("an API key is required: Authorization: Bearer <key>",
                               field="authorization")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthenticated("use Authorization: Bearer <key>", field="authorization")
    return key.strip()


def check_key_row(row: Mapping[Any, Any] | None, digest: str) -> Caller:
    """The caller of a looked-up key row; unknown or revoked keys are refused alike."""
    if row is None or not hmac.compare_digest(row["key_hash"], digest) \
            or row["revoked_at"] is not None:
        raise NotAuthenticated("unknown or revoked API key", field="authorization")
    return Caller(row["id"], row["role"], row["label"], row["vendor_id"])


def authenticate(conn: Connection, key: str) -> Caller:
    digest = hash_key(key)
    row = conn.execute(
        select(api_keys.c.id, api_keys.c.role, api_keys.c.label, api_keys.c.vendor_id,
               api_keys.c.key_hash, api_keys.c.revoked_at)
        .where(api_keys.c.key_hash == digest)
    ).first()
    return check_key_row(None if row is None else row._mapping, digest)
