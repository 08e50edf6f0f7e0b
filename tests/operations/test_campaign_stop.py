"""SIGTERM stops a key change campaign between chunks (issue 21, point 6), on SQLite and
PostgreSQL: the chunk in hand commits, no further one is claimed, the process exits 0 and
holds no claim, so the next run carries on at once and no meter is issued twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sts.cli.vending import admin, campaign
from sts.vending.registry.admin import DEMO_SGC
from sts.vending.storage.tables import campaign_items, transactions
from tests.operations import rig

pytestmark = pytest.mark.slow
METERS, CHUNK = 400, 2


def _done(db_url: str) -> int:
    return int(rig.scalar(db_url, sa.select(sa.func.count()).select_from(campaign_items)
                          .where(campaign_items.c.status == "done")))


def test_sigterm_ends_a_campaign_between_chunks(db_url: str, kek_file: str,
                                                tmp_path: Path) -> None:
    rig.prepare(db_url, kek_file, meters_count=METERS)
    base = ["--db", db_url, "--kek-file", kek_file]
    for group, args in ((admin, ["key", "add", DEMO_SGC, "2", "--not-current"]),
                        (campaign, ["create", "roll", "--sgc", DEMO_SGC, "--to-krn", "2"])):
        res = CliRunner().invoke(group, [*base, *args])
        assert res.exit_code == 0, res.output
    sts = str(Path(sys.executable).parent / "sts")
    proc = subprocess.Popen([sts, "campaign", "run", "roll", *base, "--chunk", str(CHUNK),
                             "--out", str(tmp_path / "first.jsonl"), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _done(db_url) < 4 * CHUNK:  # polling the database until the run is under way
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    first = _done(db_url)
    assert first < METERS and first % CHUNK == 0  # whole chunks only, then it stopped
    written = (tmp_path / "first.jsonl").read_text().splitlines()
    assert len(written) == first  # every record of what it issued written out

    res = CliRunner().invoke(campaign, [*base, "run", "roll", "--chunk", "200",
                                        "--out", str(tmp_path / "second.jsonl"),
                                        "--no-progress"])
    assert res.exit_code == 0, res.output
    assert _done(db_url) == METERS  # no claim was left behind to skip
    issued = rig.scalar(db_url, sa.select(sa.func.count(sa.distinct(transactions.c.meter_id)))
                        .where(transactions.c.kind == "key_change"))
    changes = rig.scalar(db_url, sa.select(sa.func.count()).select_from(transactions)
                         .where(transactions.c.kind == "key_change"))
    assert issued == changes == METERS  # one key change per meter
