"""The one password hasher: argon2id for operators' passwords and for the secrets of the
credentials that faces check on every request (Electrum basic credentials, XMLVend clients).

Parameters: OWASP's argon2id minimum (19 MiB, two passes, one lane), ~20-30 ms a hash here,
which bounds what a sign-in storm costs the server while a stolen hash still costs an attacker
that much per guess.  A hash made with other parameters is rehashed at the next good sign-in
(`PASSWORDS.check_needs_rehash`)."""

from __future__ import annotations

from argon2 import PasswordHasher

PASSWORDS = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
