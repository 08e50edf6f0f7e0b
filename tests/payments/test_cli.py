"""`sts admin demo --json` names the demo's paybill and its URLs; `sts admin mobile-money
reconcile FILE` lists the differences both ways; secrets stay hidden and private."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from sts.cli.vending import admin
from sts.errors import ConfigError
from sts.payments.config import Secrets
from sts.payments.mpesa import parse_statement
from sts.vending.usecases.payments import Payment
from tests.payments.conftest import Momo, confirmation

HEADER = ('"Receipt No.","Completion Time","Initiation Time","Details","Transaction Status",'
          '"Paid In","Withdrawn","Balance","Balance Confirmed","Reason Type",'
          '"Other Party Info","Linked Transaction ID","A/C No."\n')


def test_admin_demo_json_mobile_money(db_url: str, kek_file: str) -> None:
    result = CliRunner().invoke(admin, ["--db", db_url, "--kek-file", kek_file, "demo",
                                        "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    mm = json.loads(result.output)["mobile_money"]
    assert {"shortcode", "validation_url", "confirmation_url", "ussd_url",
            "buy_url"} <= set(mm)
    assert mm["validation_url"].endswith("/pay/c2b/validation")
    assert "mpesa" not in mm["confirmation_url"].lower()  # Daraja refuses such URLs


def line(receipt: str, amount: str, account: str, at: str = "2025-03-03 10:00:00") -> str:
    return (f'"{receipt}","{at}","{at}","Pay Bill from 2547****111","Completed",'
            f'"{amount}","","50000.00","Yes","Pay Bill","254722000111 - JOHN DOE","",'
            f'"{account}"\n')


def test_reconcile_both_ways(momo: Momo, tmp_path: Path, kek_file: str) -> None:
    meter = momo.meters[0]
    for tid in ("RKREC00001", "RKREC00002", "RKREC00004"):
        assert momo.client.post("/pay/c2b/confirmation",
                                json=confirmation(tid, meter)).status_code == 200
    momo.demo.registry.set_meter_status(momo.meters[1], "blocked", "tamper")
    momo.client.post("/pay/c2b/confirmation", json=confirmation("RKREC00005", momo.meters[1]))
    text = HEADER + line("RKREC00001", "100.00", meter) + line("RKREC00002", "1,000.00", meter) \
        + line("RKREC00003", "50.00", meter) + line("RKREC00005", "100.00", momo.meters[1])
    assert [x.amount for x in parse_statement(text)][:2] == [Decimal("100.00"),
                                                           Decimal("1000.00")]
    statement = tmp_path / "statement.csv"
    statement.write_text(text)
    result = CliRunner().invoke(admin, ["--db", momo.service.db.url, "--kek-file", kek_file,
                                        "mobile-money", "reconcile", str(statement), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 1  # differences found
    out = json.loads(result.output)
    assert out["matched"] == 1
    assert [x["provider_id"] for x in out["not_recorded"]] == ["RKREC00003"]
    assert [x["provider_id"] for x in out["amount_differs"]] == ["RKREC00002"]
    assert [x["provider_id"] for x in out["not_sold"]] == ["RKREC00005"]
    assert [x["provider_id"] for x in out["not_on_statement"]] == ["RKREC00004"]


def test_secrets_hidden_and_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sts.payments.config import MomoSettings

    path = tmp_path / "secrets"
    path.write_text("consumer_key=ck\nconsumer_secret=TOPSECRET\npasskey=PASSKEY\n")
    os.chmod(path, 0o644)
    monkeypatch.setenv("STS_MPESA_SECRETS", str(path))
    monkeypatch.setenv("STS_MPESA_PASSKEY", "not this one: the file wins")
    with pytest.raises(ConfigError) as err:
        Secrets.from_env()
    assert err.value.field == "STS_MPESA_SECRETS"
    os.chmod(path, 0o600)
    sec = Secrets.from_env()
    assert sec.consumer_secret == "TOPSECRET" and sec.passkey == "PASSKEY"
    assert "TOPSECRET" not in repr(sec) and "PASSKEY" not in f"{sec}"
    # a bad network names the provider's own setting
    monkeypatch.setenv("STS_MOMO_ALLOW", "10.0.0.0/33")
    with pytest.raises(ConfigError) as err:
        MomoSettings.from_env()
    assert err.value.field == "STS_MOMO_ALLOW"


def test_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from sts.payments.config import MobileMoneySettings

    monkeypatch.delenv("STS_MPESA_SECRETS", raising=False)
    monkeypatch.setenv("STS_MPESA_CONSUMER_SECRET", "ENVSECRET")
    monkeypatch.setenv("STS_MPESA_PASSKEY", "ENVPASS")
    mm = MobileMoneySettings.from_env()
    assert mm.secrets.consumer_secret == "ENVSECRET" and mm.secrets.passkey == "ENVPASS"
    assert "ENVSECRET" not in repr(mm) and "ENVPASS" not in repr(mm)


def test_payment_repr_is_plain() -> None:
    p = Payment("mpesa", "RK1", "c2b", "x", Decimal(1))
    assert "RK1" in repr(p)


def test_reconcile_sell_records_lost_callbacks(momo: Momo, tmp_path: Path,
                                               kek_file: str) -> None:
    """A payment whose callback never came is recorded and sold from the statement; the
    late callback then changes nothing."""
    meter = momo.meters[0]
    statement = tmp_path / "statement.csv"
    statement.write_text(HEADER + line("RKLOST0001", "100.00", meter)
                         + line("RKLOST0002", "100.00", "99999"))
    args = ["--db", momo.service.db.url, "--kek-file", kek_file, "mobile-money", "reconcile",
            str(statement), "--json"]
    result = CliRunner().invoke(admin, [*args, "--sell"], catch_exceptions=False)
    out = json.loads(result.output)
    assert out["matched"] == 1 and [x["provider_id"] for x in out["not_sold"]] == [
        "RKLOST0002"]  # a mistyped account: an exception to settle
    got = momo.service.payment("mpesa", "RKLOST0001", momo_admin())
    assert got["state"] == "sold" and got["phone"] == "+254722000111"
    late = momo.client.post("/pay/c2b/confirmation", json=confirmation("RKLOST0001", meter))
    assert late.status_code == 200
    assert momo.service.payment("mpesa", "RKLOST0001", momo_admin()) == got


def momo_admin() -> object:
    from sts.vending.access.policy import Caller

    return Caller(0, "admin", "t", None)
