"""Server settings, from arguments or the environment, and opening a ready service.

Environment (what `sts serve` hands its worker processes): STS_DB_URL, STS_KEK_FILE or STS_KEK,
STS_STA_TABLES, STS_LOOKUP_LIMIT, STS_MAX_BODY (request body limit in bytes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sts.vending.clock import Clock, wall_clock
from sts.vending.db import DEFAULT_SQLITE_FILE, Database, migrate, normalise_url, sqlite_path
from sts.vending.keys import ENV_KEK, SoftwareSecurityModule, create_kek_file, load_kek
from sts.vending.service import VendingService

DEFAULT_MAX_BODY = 64 * 1024  # bytes; a sale's body is under 300 (docs/vending.md, API limits)


@dataclass
class Settings:
    db_url: str = DEFAULT_SQLITE_FILE
    kek_file: str | None = None
    sta_tables: str | None = None
    lookup_limit: int = 600
    pool_size: int = 8
    max_body: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        self.db_url = normalise_url(self.db_url)
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
            pool_size=int(os.environ.get("STS_DB_POOL", "8")),
            max_body=int(os.environ.get("STS_MAX_BODY", str(DEFAULT_MAX_BODY))),
        )

    def env(self) -> dict[str, str]:
        out = {"STS_DB_URL": self.db_url, "STS_LOOKUP_LIMIT": str(self.lookup_limit),
               "STS_DB_POOL": str(self.pool_size), "STS_MAX_BODY": str(self.max_body)}
        if self.kek_file:
            out["STS_KEK_FILE"] = self.kek_file
        if self.sta_tables:
            out["STS_STA_TABLES"] = self.sta_tables
        return out

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
    sm = SoftwareSecurityModule(load_kek(settings.kek_file), sta_tables=settings.sta_tables)
    return VendingService(db, sm, clock=clock, lookup_limit=settings.lookup_limit)
