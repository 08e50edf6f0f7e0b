"""`sts admin meter export-sim`: the meter file a test rig needs to run the utility's meters
as virtual AMI meters (`sts fleet ami`).

Each line is a FORMAT.md meter object in key-only form (the meter's decoder key and its
identity; never the vending key) plus `"id"` (the PAN).  A decoder key opens only its own
meter, but it is still key material: the export is for administrators only, is audited with
the meters it covered, and the file is created readable by its owner alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sts.vending.keys.security_module import SecurityModule
from sts.vending.storage.database import Database
from sts.vending.usecases import key_release


def export_sim(db: Database, sm: SecurityModule, pans: Sequence[str], *, actor: str,
               now: datetime) -> list[dict[str, Any]]:
    """The meter file of `sts fleet ami`: the service releases the decoder keys (audited)."""
    return key_release.export_meters(db, sm, pans, actor=actor, now=now)


def write_jsonl(path: str, objs: list[dict[str, Any]]) -> None:
    """Owner-only file, written whole then renamed into place."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        for obj in objs:
            fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
    os.replace(tmp, target)
