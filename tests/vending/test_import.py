"""Bulk meter import (sts.vending.registry.importer and `sts admin meter import`), on both databases:
every row checked before anything is written, bad rows by line number, idempotent re-import,
conflicts never overwritten, and the demo going through the same path."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from sts.cli.vending import admin
from sts.codec.pan import MeterPan, luhn_check_digit
from sts.errors import InputError
from sts.vending.registry.admin import Registry, fill_demo
from sts.vending.registry.importer import import_file
from sts.vending.storage.tables import audit_log, customers, meters
from tests.fixtures import FakeClock

SGC = "111111"
FIELDS = ["meter", "sgc", "krn", "ti", "kt", "ea", "dkga", "base_date", "tariff", "account_no",
          "name", "address"]


def drn(i: int, digits: int = 11) -> str:
    body = f"{i:0{digits - 1}d}" if digits == 13 else f"05{i:08d}"
    return body + str(luhn_check_digit(body))


def row(i: int, **over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"meter": drn(i), "sgc": SGC, "krn": "1", "ti": "1", "kt": "2",
                           "ea": "7", "dkga": "4", "base_date": "2014", "tariff": "T1",
                           "account_no": f"A{i:05d}", "name": f"Customer {i}",
                           "address": f"{i} Main Road"}
    out.update(over)
    return out


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def reg(service: Any, clock: FakeClock) -> Registry:
    r = Registry(service.db, service.sm, clock=clock, actor="test")
    r.add_utility("U1")
    r.add_sgc(SGC, utility="U1")
    r.add_key(SGC, 1, dkga=4, ea=7, base_date=2014)
    r.add_key(SGC, 2, dkga=4, ea=11, base_date=2035, make_current=False)
    r.add_tariff("T1", price="2.50", ti=1)
    r.add_tariff("T2", price="3.00", ti=2)
    return r


def counts(reg: Registry) -> tuple[int, int, int]:
    with reg.db.read() as conn:
        return (conn.scalar(select(func.count()).select_from(meters)) or 0,
                conn.scalar(select(func.count()).select_from(customers)) or 0,
                conn.scalar(select(func.count()).select_from(audit_log)) or 0)


def do_import(reg: Registry, path: Path) -> Any:
    return import_file(reg.db, path, actor="test", at=reg._now())


def test_csv_import_then_reimport_changes_nothing(reg: Registry, tmp_path: Path) -> None:
    rows = [row(i) for i in range(1, 201)]
    rows[0]["meter"] = MeterPan.from_drn(drn(1)).pan  # the 18-digit PAN
    rows[1]["meter"] = f"{drn(2)[:4]} {drn(2)[4:8]} {drn(2)[8:]}"  # as printed, with spaces
    rows[2]["meter"] = drn(3, 13)  # a 13-digit meter number (IIN 0000)
    rows[3]["account_no"] = rows[4]["account_no"] = "SHARED"  # one customer, two meters
    rows[3]["name"] = rows[4]["name"] = "Shared Customer"
    rows[3]["address"] = rows[4]["address"] = "1 Shared Street"
    for r in rows[5:10]:
        r["account_no"] = r["name"] = r["address"] = ""  # meters without a customer
    path = write_csv(tmp_path / "meters.csv", rows)
    before = counts(reg)
    res = do_import(reg, path)
    assert res.ok and (res.rows, res.imported, res.unchanged) == (200, 200, 0)
    assert res.customers_added == 194
    m, c, a = counts(reg)
    assert (m, c, a) == (before[0] + 200, before[1] + 194, before[2] + 1)
    with reg.db.read() as conn:
        entry = conn.execute(select(audit_log).order_by(audit_log.c.seq.desc())).first()
        assert entry is not None and entry.action == "meter.import"
        assert json.loads(entry.details)["imported"] == 200
        stored = set(conn.execute(select(meters.c.pan)).scalars())
    assert MeterPan.from_drn(drn(3, 13)).pan in stored
    assert MeterPan.from_drn(drn(2)).pan in stored
    again = do_import(reg, path)
    assert again.ok and (again.imported, again.unchanged, again.customers_added) == (0, 200, 0)
    assert counts(reg) == (m, c, a)


def test_jsonl_import_numbers_and_key_by_krn(reg: Registry, tmp_path: Path) -> None:
    rows = [row(i, krn=2, ti=2, kt=2, ea=11, dkga=4, base_date=2035, tariff="T2")
            for i in range(1, 51)]
    rows[0]["krn"] = "2"  # digits as a string are fine too
    path = write_jsonl(tmp_path / "meters.jsonl", rows)
    res = do_import(reg, path)
    assert res.ok and res.imported == 50
    with reg.db.read() as conn:
        tis = set(conn.execute(select(meters.c.ti)).scalars())
    assert tis == {2}
    assert do_import(reg, path).unchanged == 50


def test_bad_rows_reported_by_line_and_nothing_imported(reg: Registry, tmp_path: Path) -> None:
    rows = [row(i) for i in range(1, 21)]
    bad = drn(3)
    rows[1]["meter"] = bad[:-1] + str((int(bad[-1]) + 1) % 10)  # line 3: wrong check digit
    rows[2]["sgc"] = "222222"  # line 4: unknown SGC
    rows[3]["krn"] = "5"  # line 5: no such key
    rows[4]["tariff"] = "Nope"  # line 6
    rows[5]["kt"] = "9"  # line 7
    rows[6]["ti"] = "100"  # line 8
    rows[7]["meter"] = MeterPan.from_drn(drn(1)).pan  # line 9: same meter as line 2
    rows[8]["ea"] = "11"  # line 10: the key is EA07
    rows[9]["base_date"] = "1993"  # line 11
    rows[10]["ti"] = "x1"  # line 12
    path = write_csv(tmp_path / "bad.csv", rows)
    before = counts(reg)
    res = do_import(reg, path)
    got = {(r.line, r.field) for r in res.rejected}
    assert got == {(3, "meter"), (4, "sgc"), (5, "krn"), (6, "tariff"), (7, "kt"), (8, "ti"),
                   (9, "meter"), (10, "ea"), (11, "base_date"), (12, "ti")}
    by_line = {r.line: r for r in res.rejected}
    assert "check digit" in by_line[3].message and by_line[3].code == "invalid_meter_number"
    assert "line 2" in by_line[9].message
    assert res.imported == 0 and counts(reg) == before
    jl = write_jsonl(tmp_path / "bad.jsonl", [row(1), {"meter": drn(2), "sgc": 111111}, row(3)])
    res = do_import(reg, jl)
    assert [(r.line, r.field) for r in res.rejected] == [(2, "sgc")]
    assert counts(reg) == before


def test_conflicting_rows_are_not_overwritten(reg: Registry, tmp_path: Path) -> None:
    first = [row(i) for i in range(1, 11)]
    assert do_import(reg, write_csv(tmp_path / "a.csv", first)).imported == 10
    before = counts(reg)
    second = [row(i) for i in range(1, 16)]
    second[4]["tariff"] = "T2"  # line 6: stored on T1
    second[6]["address"] = "elsewhere"  # line 8: the customer's stored address differs
    res = do_import(reg, write_csv(tmp_path / "b.csv", second))
    assert [(r.line, r.code) for r in res.rejected] == [(6, "conflict"), (8, "conflict")]
    assert "tariff" in res.rejected[0].message
    assert counts(reg) == before  # the five new meters were not imported either


def test_demo_uses_the_import(service: Any, clock: FakeClock) -> None:
    reg = Registry(service.db, service.sm, clock=clock)
    steps: list[tuple[str, int]] = []
    info = fill_demo(reg, production_tables=False, meters_count=120,
                     progress=lambda s, n: steps.append((s, n)))
    assert len(info["meters"]) == 120 and ("done", 120) in steps
    with reg.db.read() as conn:
        actions = list(conn.execute(select(audit_log.c.action)).scalars())
        assert conn.scalar(select(func.count()).select_from(customers)) == 120
    assert actions.count("meter.import") == 1 and "meter.add" not in actions


def test_cli_import(db_url: str, kek_file: str, tmp_path: Path) -> None:
    base = ["--db", db_url, "--kek-file", kek_file]
    runner = CliRunner()
    for args in (["utility", "U1"], ["sgc", SGC, "--utility", "U1"],
                 ["key", "add", SGC, "1", "--base-date", "2014"],
                 ["tariff", "T1", "--price", "2.5"]):
        assert runner.invoke(admin, [*base, *args]).exit_code == 0
    good = write_csv(tmp_path / "m.csv", [row(i) for i in range(1, 31)])
    out = runner.invoke(admin, [*base, "meter", "import", str(good), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["imported"] == 30
    out = runner.invoke(admin, ["meter", "import", str(good), *base])
    assert out.exit_code == 0 and "0 meters imported, 30 unchanged" in out.output
    rows = [row(i) for i in range(31, 41)]
    rows[3]["tariff"] = "Nope"
    bad = write_jsonl(tmp_path / "m.data", rows)  # format from the first character
    errs = tmp_path / "errors.jsonl"
    out = runner.invoke(admin, [*base, "meter", "import", str(bad), "--errors", str(errs),
                                "--json"])
    assert out.exit_code == 1
    summary = json.loads(out.output)
    assert summary["imported"] == 0 and summary["rejected"] == 1
    assert [json.loads(x)["line"] for x in errs.read_text().splitlines()] == [4]
    out = runner.invoke(admin, [*base, "meter", "import", str(tmp_path / "missing.csv")])
    assert isinstance(out.exception, InputError) and out.exception.field == "file"
    (tmp_path / "h.csv").write_text("meter,colour\n" + drn(50) + ",red\n")
    out = runner.invoke(admin, [*base, "meter", "import", str(tmp_path / "h.csv")])
    assert isinstance(out.exception, InputError) and "colour" in out.exception.message


def test_text_fields_checked(reg: Registry, tmp_path: Path) -> None:
    rows = [row(i) for i in range(1, 6)]
    rows[0]["name"] = "Ann\x00"  # PostgreSQL cannot store NUL: refused by name, not by crash
    rows[1]["address"] = "x" * 301
    rows[2]["name"] = ""  # an account needs a name
    rows[3]["account_no"] = rows[4]["account_no"]  # same account, another name
    res = do_import(reg, write_jsonl(tmp_path / "t.jsonl", rows))
    assert [(r.line, r.field) for r in res.rejected] == [
        (1, "name"), (2, "address"), (3, "name"), (5, "account_no")]
    assert res.imported == 0 and counts(reg)[0] == 0


def test_bulk_path_keeps_the_foreign_keys(reg: Registry, tmp_path: Path) -> None:
    """The large-import path (foreign keys re-added after the insert) forced on a small file:
    same meters, and the meters table keeps exactly its constraints."""
    from sqlalchemy import text

    from sts.vending.registry.files import read_rows
    from sts.vending.registry.importer import import_meters

    def fks() -> list[tuple[str, str]]:
        if reg.db.is_sqlite:
            return []
        with reg.db.read() as conn:
            return [(r[0], r[1]) for r in conn.execute(text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'meters'::regclass ORDER BY conname"))]

    before = fks()
    path = write_csv(tmp_path / "m.csv", [row(i) for i in range(1, 41)])
    with path.open("rb") as f:
        res = import_meters(reg.db, read_rows(f, "csv"), actor="t", at=reg._now(), bulk_rows=1)
    assert res.ok and res.imported == 40
    assert fks() == before and (reg.db.is_sqlite or len(before) >= 5)
    with reg.db.read() as conn:
        linked = conn.scalar(select(func.count()).select_from(meters)
                             .join(customers, customers.c.id == meters.c.customer_id))
    assert linked == 40
