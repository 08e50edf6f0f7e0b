"""`sts admin backup` while sales run, `sts admin restore` into an empty database: the restored
database is one consistent moment (audit verify passes, every meter's last TID is its last
token's), a backup made after the sales holds every sale and key, a non-empty target is
refused, and the KEK is never in a backup.  SQLite (online backup API) and PostgreSQL
(pg_dump / pg_restore, where installed)."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sts.cli import cli
from tests.fixtures import pg_worker_url

SALES = 500


def _target(db_url: str, tmp_path: Path, worker_id: str, name: str) -> str:
    if db_url.startswith("postgresql"):
        return pg_worker_url(f"{worker_id}_{name}")
    return str(tmp_path / f"{name}.sqlite3")


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def _refusal(result: Any) -> str:
    """What a refused command says (its error, as `sts` prints it)."""
    assert result.exit_code != 0
    return f"{result.output} {result.exception}"


def _meter_tids(url: str) -> dict[str, tuple[int, int]]:
    from sts.vending.storage.database import normalise_url

    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT pan, tid_epoch, last_tid FROM meters")).all()
            last: dict[str, int] = dict(conn.execute(sa.text(
                "SELECT m.pan, MAX(t.tid) FROM tokens t JOIN meters m ON m.id = t.meter_id "
                "GROUP BY m.pan")).all())
    finally:
        engine.dispose()
    out = {r.pan: (int(r.tid_epoch), int(r.last_tid)) for r in rows}
    for pan, tid in last.items():  # each meter's row agrees with its last token
        assert out[pan][1] == tid, pan
    return out


def _purchase_ids(url: str) -> set[str]:
    from sts.vending.storage.database import normalise_url

    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.text(
                "SELECT request_id FROM transactions WHERE kind = 'sale'"))}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_backup_during_sales_then_restore(demo: Any, db_url: str, tmp_path: Path,
                                          worker_id: str, kek_file: str) -> None:
    from sts.vending.access.api_keys import authenticate
    from sts.vending.storage.backup import row_counts

    if not db_url.startswith("sqlite") and not (shutil.which("pg_dump")
                                                and shutil.which("pg_restore")):
        pytest.skip("pg_dump / pg_restore are not installed")
    svc = demo.service
    with svc.db.read() as conn:
        vendor = authenticate(conn, demo.keys["vendor"])
    meters = demo.meters[:5]
    halfway = threading.Event()
    failures: list[BaseException] = []

    def sell() -> None:
        try:
            for i in range(SALES):
                svc.purchase(f"backup-sale-{i:05d}", {"meter": meters[i % len(meters)],
                                                      "amount": "10"}, vendor)
                if i == SALES // 5:
                    halfway.set()
        except BaseException as exc:  # the test fails below, naming it
            failures.append(exc)
            halfway.set()

    seller = threading.Thread(target=sell)
    seller.start()
    assert halfway.wait(timeout=600)
    during = tmp_path / "during.backup"
    made = _run("admin", "backup", "--db", db_url, "--out", str(during), "--json")
    seller.join()
    assert not failures, failures
    assert made.exit_code == 0, made.output
    report = json.loads(made.output)
    assert "NOT in this backup" in report["not_included"]
    assert during.stat().st_mode & 0o777 == 0o600
    kek = Path(kek_file).read_text().strip()
    assert kek.encode() not in during.read_bytes()

    # the mid-sales backup restores to one consistent moment: the chains verify and every
    # meter's last TID is its last token's
    first = _target(db_url, tmp_path, worker_id, "restored1")
    restored = _run("admin", "restore", str(during), "--db", first, "--json")
    assert restored.exit_code == 0, restored.output
    out = json.loads(restored.output)
    assert out["audit"]["ok"], out["audit"]
    if db_url.startswith("sqlite"):
        assert out["rows"] == row_counts(str(during))
    sold_then = _purchase_ids(first)
    assert SALES // 5 <= len(sold_then) <= SALES
    _meter_tids(first)

    # after the sales: a backup holds every sale and key, TIDs as live
    after = tmp_path / "after.backup"
    assert _run("admin", "backup", "--db", db_url, "--out", str(after)).exit_code == 0
    second = _target(db_url, tmp_path, worker_id, "restored2")
    restored = _run("admin", "restore", str(after), "--db", second, "--json")
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.output)["rows"] == row_counts(db_url)
    assert _meter_tids(second) == _meter_tids(db_url)
    assert {f"backup-sale-{i:05d}" for i in range(SALES)} <= _purchase_ids(second)
    assert sold_then <= _purchase_ids(second)
    verified = _run("audit", "verify", "--db", second)
    assert verified.exit_code == 0 and "OK" in verified.output

    again = _run("admin", "restore", str(after), "--db", second)  # never into a used database
    assert "not empty" in _refusal(again)


def test_restore_refuses_what_is_not_a_backup_or_the_wrong_kind(tmp_path: Path) -> None:
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a backup at all")
    refused = _run("admin", "restore", str(junk), "--db", str(tmp_path / "new.sqlite3"))
    assert "neither a SQLite backup" in _refusal(refused)
    dump = tmp_path / "x.dump"
    dump.write_bytes(b"PGDMP" + bytes(20))
    refused = _run("admin", "restore", str(dump), "--db", str(tmp_path / "new.sqlite3"))
    assert "restores into a PostgreSQL database" in _refusal(refused)
    nowhere = _run("admin", "restore", str(dump))
    assert "--db" in _refusal(nowhere)
