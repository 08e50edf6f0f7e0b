"""Server settings, from arguments or the environment, and opening a ready service.

Environment (what `sts serve` hands its worker processes): STS_DB_URL, STS_KEK_FILE or STS_KEK,
STS_STA_TABLES, STS_LOOKUP_LIMIT, STS_SIGNIN_LIMIT, STS_MAX_BODY (request body limit in
bytes); the security module: STS_SECURITY_MODULE (software | pkcs11), STS_PKCS11_LIB,
STS_PKCS11_TOKEN, STS_PKCS11_PIN_FILE, STS_PKCS11_CACHE_SECONDS.  The PKCS#11 user PIN comes
from STS_PKCS11_PIN or the PIN file, never from a command line or a settings dump.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sts.errors import ConfigError
from sts.vending.access.operators import SIGNIN_LIMIT
from sts.vending.clock import Clock, wall_clock
from sts.vending.keys.opening import ENV_SECURITY_MODULE, open_security_module
from sts.vending.keys.security_module import SecurityModule
from sts.vending.keys.software import ENV_KEK, create_kek_file
from sts.vending.service import VendingService
from sts.vending.storage.database import DEFAULT_SQLITE_FILE, Database, migrate, normalise_url, sqlite_path

DEFAULT_MAX_BODY = 64 * 1024  # bytes; a sale's body is under 300 (docs/vending.md, API limits)


@dataclass
class Settings:
    db_url: str = DEFAULT_SQLITE_FILE
    kek_file: str | None = None
    sta_tables: str | None = None
    lookup_limit: int = 600
    signin_limit: int = SIGNIN_LIMIT
    pool_size: int = 8
    max_body: int = DEFAULT_MAX_BODY
    security_module: str | None = None  # None: $STS_SECURITY_MODULE, else software
    pkcs11_lib: str | None = None
    pkcs11_token: str | None = None
    pkcs11_pin_file: str | None = None
    pkcs11_cache_seconds: float | None = None
    # the reverse proxies whose X-Forwarded-For / -Proto are believed (comma-separated
    # addresses or networks, "*" for any); None: no proxy, the peer's address is the client's
    forwarded_allow_ips: str | None = None

    def __post_init__(self) -> None:
        self.db_url = normalise_url(self.db_url)
        env = os.environ
        self.security_module = (self.security_module or env.get(ENV_SECURITY_MODULE)
                                or "software")
        self.pkcs11_lib = self.pkcs11_lib or env.get("STS_PKCS11_LIB") or None
        self.pkcs11_token = self.pkcs11_token or env.get("STS_PKCS11_TOKEN") or None
        self.pkcs11_pin_file = self.pkcs11_pin_file or env.get("STS_PKCS11_PIN_FILE") or None
        if self.pkcs11_cache_seconds is None and env.get("STS_PKCS11_CACHE_SECONDS"):
            try:
                self.pkcs11_cache_seconds = float(env["STS_PKCS11_CACHE_SECONDS"])
            except ValueError:
                raise ConfigError("STS_PKCS11_CACHE_SECONDS must be a number of seconds",
                                  field="pkcs11_cache_seconds") from None
        if self.kek_file is None and not os.environ.get(ENV_KEK):
            self.kek_file = os.environ.get("STS_KEK_FILE") or None
        if self.kek_file is None and not os.environ.get(ENV_KEK):
            path = sqlite_path(self.db_url)
            if path is not None:  # the embedded default: a KEK file beside the database
                self.kek_file = str(path.with_name(path.name + ".kek"))

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            db_url=os.environ.get("STS_DB_URL", DEFAULT_SQLITE_FILE),
            kek_file=os.environ.get("STS_KEK_FILE") or None,
            sta_tables=os.environ.get("STS_STA_TABLES") or None,
            lookup_limit=int(os.environ.get("STS_LOOKUP_LIMIT", "600")),
            signin_limit=int(os.environ.get("STS_SIGNIN_LIMIT", str(SIGNIN_LIMIT))),
            pool_size=int(os.environ.get("STS_DB_POOL", "8")),
            max_body=int(os.environ.get("STS_MAX_BODY", str(DEFAULT_MAX_BODY))),
        )

    def env(self) -> dict[str, str]:
        out = {"STS_DB_URL": self.db_url, "STS_LOOKUP_LIMIT": str(self.lookup_limit),
               "STS_SIGNIN_LIMIT": str(self.signin_limit),
               "STS_DB_POOL": str(self.pool_size), "STS_MAX_BODY": str(self.max_body)}
        if self.kek_file:
            out["STS_KEK_FILE"] = self.kek_file
        if self.sta_tables:
            out["STS_STA_TABLES"] = self.sta_tables
        out[ENV_SECURITY_MODULE] = self.security_module or "software"
        for name, value in (("STS_PKCS11_LIB", self.pkcs11_lib),
                            ("STS_PKCS11_TOKEN", self.pkcs11_token),
                            ("STS_PKCS11_PIN_FILE", self.pkcs11_pin_file),
                            ("STS_PKCS11_CACHE_SECONDS", self.pkcs11_cache_seconds)):
            if value is not None:
                out[name] = str(value)
        return out

    def uvicorn_options(self) -> dict[str, Any]:
        """uvicorn's proxy settings.  Off unless proxies are named: uvicorn by default believes
        X-Forwarded-For from loopback, so any local client (or a proxy that passes the header
        on) could pick its own address and walk past the per-address sign-in throttle."""
        if not self.forwarded_allow_ips:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": self.forwarded_allow_ips}

    def open_security_module(self) -> SecurityModule:
        return open_security_module(
            self.security_module, kek_file=self.kek_file, sta_tables=self.sta_tables,
            pkcs11_lib=self.pkcs11_lib, pkcs11_token=self.pkcs11_token,
            pkcs11_pin_file=self.pkcs11_pin_file, cache_seconds=self.pkcs11_cache_seconds)

    def ensure_kek(self) -> None:
        """Create the dev KEK file beside a SQLite database if there is none yet."""
        if os.environ.get(ENV_KEK) or self.kek_file is None:
            return
        path = Path(self.kek_file)
        if not path.exists() and sqlite_path(self.db_url) is not None:
            create_kek_file(path)


def open_service(settings: Settings, *, clock: Clock = wall_clock, run_migrations: bool = False,
                 create_kek: bool = False) -> VendingService:
    if create_kek:
        settings.ensure_kek()
    db = Database(settings.db_url, pool_size=settings.pool_size)
    if run_migrations:
        migrate(db)
    sm = settings.open_security_module()
    return VendingService(db, sm, clock=clock, lookup_limit=settings.lookup_limit,
                          signin_limit=settings.signin_limit)
