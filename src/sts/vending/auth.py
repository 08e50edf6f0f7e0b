"""API keys and roles.

A key is `stsk_` plus 32 random bytes (URL-safe base64).  Only its SHA-256 is stored: the key has
256 bits of entropy, so a slow password hash would add nothing.  Each key carries one role;
vendor keys (and supervisor keys that sell) are bound to a vendor, whose float pays for sales.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, select

from sts.errors import InputError, NotAuthenticated, NotAuthorised
from sts.vending.models import api_keys

ROLES = ("vendor", "supervisor", "engineer", "admin", "auditor")
KEY_PREFIX = "stsk_"

# what each action needs
PERMISSIONS: dict[str, frozenset[str]] = {
    "lookup": frozenset({"vendor", "supervisor", "engineer", "admin"}),
    "purchase": frozenset({"vendor", "supervisor"}),
    "reprint": frozenset({"vendor", "supervisor"}),
    "reverse": frozenset({"supervisor"}),
    # a switch's reversal advice for the vendor's own unconfirmed sale (sts.vending.advices)
    "reverse_advice": frozenset({"vendor", "supervisor"}),
    "engineering": frozenset({"engineer"}),
    "verify": frozenset({"vendor", "supervisor", "engineer", "admin", "auditor"}),
    "audit": frozenset({"auditor", "admin"}),
    "admin": frozenset({"admin"}),
    # token delivery (sts.delivery): operators watch deliveries; sellers resend their own
    "deliveries": frozenset({"vendor", "supervisor", "engineer", "admin", "auditor"}),
    "resend": frozenset({"vendor", "supervisor", "engineer"}),
}


@dataclass(frozen=True)
class Caller:
    key_id: int
    role: str
    label: str
    vendor_id: int | None

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}:{self.role}:{self.label}"

    def require(self, action: str) -> None:
        if self.role not in PERMISSIONS[action]:
            raise NotAuthorised(f"the {self.role} role may not {action}", field="authorization")


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


def authenticate(conn: Connection, key: str) -> Caller:
    digest = hash_key(key)
    row = conn.execute(
        select(api_keys.c.id, api_keys.c.role, api_keys.c.label, api_keys.c.vendor_id,
               api_keys.c.key_hash, api_keys.c.revoked_at)
        .where(api_keys.c.key_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
        raise NotAuthenticated("unknown or revoked API key", field="authorization")
    return Caller(row.id, row.role, row.label, row.vendor_id)
