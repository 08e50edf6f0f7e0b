"""A server one release older keeps selling while the new release migrates the database and
then beside a new server (issue 21, point 6), on SQLite and PostgreSQL.

The older release is this repository's own history: the commit before the newest migration
arrived on the first-parent line (main), exported with `git archive` and run from its source
(with this tree's compiled core when its C sources are the same, else in pure Python)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sts.vending.storage.database import Database, migrate
from sts.vending.storage.migration_plan import current_revision, script_directory
from tests.fixtures import IN_CI
from tests.operations import rig
from tests.support.server import Server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VERSIONS = "src/sts/vending/storage/migrations/versions"

_PREPARE = """
import json, sys
from sts.vending.config import Settings, open_service
from sts.vending.registry.admin import Registry, fill_demo
svc = open_service(Settings(db_url=sys.argv[1], kek_file=sys.argv[2]), run_migrations=True)
info = fill_demo(Registry(svc.db, svc.sm), production_tables=False, meters_count=4)
print(json.dumps({"key": info["api_keys"]["vendor"], "meters": info["meters"]}))
"""
_MAIN = "import sys; from sts.cli import main; sys.exit(main())"


def _older_release(tmp: Path) -> tuple[Path, str]:
    """The source tree of the release before the newest migration, and its head revision."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        if IN_CI:
            raise RuntimeError("CI run without the git history the upgrade test needs")
        pytest.skip("no git history here")
    head = script_directory().get_current_head()
    newest = next(p for p in (ROOT / VERSIONS).glob("*.py") if p.stem.startswith(head[:4]))
    added = subprocess.run(["git", "log", "--first-parent", "--format=%H", "--",
                            str(newest.relative_to(ROOT))], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    older = f"{added[-1]}^1" if added else "HEAD"  # uncommitted: the last commit is older
    # a branch merged in may have carried the newest migration under another name first: go
    # back to the newest commit whose migrations are all still ours (a real earlier release)
    ours = {p.name for p in (ROOT / VERSIONS).glob("0*.py")}
    for commit in subprocess.run(["git", "log", "--first-parent", "--format=%H", older, "--",
                                  str(VERSIONS)], cwd=ROOT, capture_output=True, text=True,
                                 ).stdout.split():
        listed = subprocess.run(["git", "ls-tree", "--name-only", f"{commit}:{VERSIONS}"],
                                cwd=ROOT, capture_output=True, text=True).stdout.split()
        theirs = {n for n in listed if n.startswith("0") and n.endswith(".py")}
        if theirs and theirs <= ours and theirs != ours:
            older = commit
            break
    known = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{older}^{{commit}}"],
                           cwd=ROOT, capture_output=True)
    if known.returncode != 0:  # a shallow clone: the previous release is not in it
        pytest.skip(f"the previous release ({older}) is not in this clone's history")
    out = tmp / "older"
    out.mkdir()
    archive = subprocess.run(["git", "archive", older, "src"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    native = sorted((ROOT / "src/sts/crypto").glob("*.c"))
    if all((out / "src/sts/crypto" / c.name).read_bytes() == c.read_bytes() for c in native):
        for built in (ROOT / "src/sts/crypto").glob("_native*.so"):  # same C: same core
            shutil.copy(built, out / "src/sts/crypto" / built.name)
    revisions = [p.stem for p in (out / VERSIONS).glob("0*.py")]
    return out / "src", max(revisions)


def test_an_older_server_keeps_selling_through_the_migration(
        empty_db_url: str, kek_file: str, tmp_path: Path) -> None:
    db_url = empty_db_url
    src, old_head = _older_release(tmp_path)
    head = script_directory().get_current_head()
    assert old_head < head
    env = {"PYTHONPATH": str(src)}
    made = subprocess.run([sys.executable, "-c", _PREPARE, db_url, kek_file],
                          capture_output=True, text=True, env={**_environ(), **env}, check=True)
    demo = json.loads(made.stdout.strip().splitlines()[-1])
    db = Database(db_url)
    assert current_revision(db) == old_head  # the older release made the schema it knows
    float_before = rig.scalar(db_url, _float())
    old = Server(db_url, kek_file, log=tmp_path / "old.log", extra_env=env,
                 program=[sys.executable, "-c", _MAIN]).start()
    new = None
    try:
        load = rig.Load([old.url], demo["key"], rig.plan(demo["meters"], 30, 1),
                        threads=4).start()
        deadline = time.monotonic() + 120
        while load.answered() < 10:  # polling a real server until sales are under way
            assert time.monotonic() < deadline, "the older server sold nothing"
            time.sleep(0.01)
        assert migrate(db) == head  # the new release migrates while the older one sells
        first = load.join()
        assert [o for o in first if o.status != 201] == []
        new = Server(db_url, kek_file, log=tmp_path / "new.log").start()
        both = rig.Load([old.url, new.url], demo["key"], rig.plan(demo["meters"], 20, 2),
                        threads=4).start().join()
        assert [o for o in both if o.status != 201] == []
        assert {o.server for o in both} == {0, 1}
    finally:
        old.stop()
        if new is not None:
            new.stop()
        db.dispose()
    stored = rig.check_ledger(db_url, float_before)
    assert len(stored) == 50 and current_revision(Database(db_url)) == head


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def _float() -> object:
    import sqlalchemy as sa

    from sts.vending.storage.tables import vendors

    return sa.select(vendors.c.float_balance)
