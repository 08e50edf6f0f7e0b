"""Choosing the security module from the configuration: software (the default) or PKCS#11."""
from __future__ import annotations

import os
from pathlib import Path

from sts.errors import ConfigError
from sts.vending.keys.security_module import SecurityModule
from sts.vending.keys.software import ENV_KEK, ENV_KEK_FILE, SoftwareSecurityModule, load_kek

# --- choosing the module -------------------------------------------------------------------------

ENV_SECURITY_MODULE = "STS_SECURITY_MODULE"
MODULE_KINDS = ("software", "pkcs11")


def open_security_module(kind: str | None, *, kek_file: str | None, sta_tables: str | None,
                         pkcs11_lib: str | None = None, pkcs11_token: str | None = None,
                         pkcs11_pin_file: str | None = None,
                         cache_seconds: float | None = None) -> SecurityModule:
    """The configured module: `software` (the default) or `pkcs11`.

    With `pkcs11` a KEK is optional: when one is configured, keys still held in software
    (before `sts admin key migrate`) keep working through it; new keys go into the module.
    Opening never contacts the token: a missing module shows as SECURITY_MODULE_UNAVAILABLE
    on the first operation that needs it, so the server starts and answers 503.
    """
    kind = (kind or os.environ.get(ENV_SECURITY_MODULE) or "software").strip().lower()
    if kind not in MODULE_KINDS:
        raise ConfigError(f"security module must be one of {', '.join(MODULE_KINDS)}, "
                          f"got {kind!r}", field="security_module")
    if kind == "software":
        return SoftwareSecurityModule(load_kek(kek_file), sta_tables=sta_tables)
    from sts.vending.keys.pkcs11 import Pkcs11SecurityModule

    software = None
    if os.environ.get(ENV_KEK) or (kek_file and Path(kek_file).is_file()) or (
            kek_file is None and os.environ.get(ENV_KEK_FILE)):
        software = SoftwareSecurityModule(load_kek(kek_file), sta_tables=sta_tables)
    return Pkcs11SecurityModule.from_settings(
        lib_path=pkcs11_lib, token_label=pkcs11_token, pin_file=pkcs11_pin_file,
        cache_seconds=cache_seconds, sta_tables=sta_tables, software=software)
