"""Is this server ready to sell?  The checks `/readyz` answers with: the database answers, its
schema is at the newest migration this code knows, and the security module computes a key's
check value (the KEK decrypts, or the PKCS#11 token is logged in).  Each check says why it
failed; none ever names a secret.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text

from sts.vending.context import load_key
from sts.vending.service import VendingService
from sts.vending.storage.tables import vending_keys


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    ms: float

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "ms": round(self.ms, 1)}


def timed(name: str, probe: Callable[[], str]) -> Check:
    """Run one probe: its detail when it returns, the error's type and message when it fails."""
    start = time.perf_counter()
    try:
        detail, ok = probe(), True
    except Exception as exc:  # a failed probe is an answer, not an error
        detail, ok = f"{type(exc).__name__}: {str(exc)[:200]}", False
    return Check(name, ok, detail, (time.perf_counter() - start) * 1000)


@functools.cache
def known_revisions() -> tuple[str, frozenset[str]]:
    """The newest migration this code carries, and all it knows (read once per process)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "sts.vending.storage:migrations")
    scripts = ScriptDirectory.from_config(cfg)
    return (str(scripts.get_current_head()),
            frozenset(rev.revision for rev in scripts.walk_revisions()))


def database(svc: VendingService) -> str:
    with svc.db.read() as conn:
        conn.execute(text("SELECT 1"))
    return "answers"


def migrations(svc: VendingService) -> str:
    from alembic.runtime.migration import MigrationContext

    with svc.db.read() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    head, known = known_revisions()
    if current == head:
        return f"at {head}"
    if current is not None and current not in known:  # a newer server migrated: additive
        return f"at {current}, newer than this server's {head} (migrations are additive)"
    raise RuntimeError(f"schema at {current or 'none'}, this server needs {head} "
                       "(run `sts admin migrate`)")


def security_module(svc: VendingService) -> str:
    with svc.db.read() as conn:
        key_id = conn.scalar(select(vending_keys.c.id).order_by(vending_keys.c.id).limit(1))
        record = load_key(conn, int(key_id)).record if key_id is not None else None
    if record is None:
        return f"{svc.sm.name}: open (no vending key yet to check)"
    svc.sm.key_check_value(record)
    return f"{svc.sm.name}: key {record.sgc}/{record.krn} checks"


def checks(svc: VendingService) -> list[Check]:
    return [timed("database", lambda: database(svc)),
            timed("migrations", lambda: migrations(svc)),
            timed("security_module", lambda: security_module(svc))]
