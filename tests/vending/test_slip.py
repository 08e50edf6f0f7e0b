"""The slip: one model from the receipt, rendered as the API's 40-column text (here) and as the
web slip (tests/web/test_slip_pages.py); money, rates and dates in the utility's way."""

from __future__ import annotations

import re
from typing import Any

from sts.codec.pan import parse_pan
from sts.vending.receipts import slip_model, slip_text
from tests.fixtures import Demo, known_pan

NBSP = "\u00a0"


def test_the_api_slip_carries_what_a_utilitys_slip_carries(demo: Demo) -> None:
    pan = demo.meters[0]
    out = demo.buy(pan, "100").json()
    text: str = out["slip"]
    receipt = out["receipt"]
    lines = text.splitlines()
    assert all(len(line) <= 40 for line in lines), text
    assert "Demo Utility" in lines[1] and "VAT reg 4000000001" in lines[1]
    assert "Vendor: Demo Vendor" in text
    assert re.search(r"^Cashier: \S+", text, re.M)  # the API key's label
    # the local date and time, no ISO "T"; the receipt number beside it
    assert re.search(rf"Receipt {receipt['receipt_no']} +\d{{1,2}} \w{{3}} \d{{4}} \d\d:\d\d$",
                     text, re.M), text
    assert f"Meter {parse_pan(pan).drn}" in text
    assert "Tariff Flat" in text and f"kWh @ R{NBSP}2,50" in text
    assert "VAT 15%" in text and "VAT 0.15" not in text
    assert re.search(rf"^TOTAL +R{NBSP}100,00$", text, re.M), text
    token = out["tokens"][0]
    assert " ".join(token["token"][i:i + 4] for i in range(0, 20, 4)) in text
    assert f"TID {token['tid']}" in text
    assert "Enter the token on the meter's keypad" in text
    assert "T" in receipt["date"]  # the receipt itself keeps its exact ISO time


def test_key_change_tokens_come_first_with_the_instruction() -> None:
    receipt: dict[str, Any] = {
        "receipt_no": "0000000042", "date": "2026-12-06T14:05:09+02:00",
        "utility": {"name": "Compagnie", "address": "Abidjan", "vat_reg_num": "CI-1",
                    "currency": "XOF", "locale": "fr_CI"},
        "vendor": {"name": "Kiosque 3"}, "cashier": "awa", "meter": {"pan": known_pan()},
        "customer": {"name": "K. Yao", "account_no": "A-9", "address": ""},
        "tariff": {"name": "Social"}, "amount": "10000.00", "units": "98.5",
        "unit": "kWh", "energy_amount": "10000.00", "energy_net": "8474.58",
        "steps": [{"units": "98.5", "price": "86.04", "amount": "8474.58"}],
        "vat": {"rate": "0.18", "amount": "1525.42"}, "charges": [], "debt": []}
    tokens = [{"kind": "STD", "token": "1" * 20, "tid": 7, "units": "98.5",
               "description": "credit token", "label": "CREDIT TOKEN"},
              {"kind": "KCT", "token": "2" * 20, "tid": 5, "description": "key change token",
               "label": "KEY CHANGE TOKEN 1"},
              {"kind": "KCT", "token": "3" * 20, "tid": 5, "description": "key change token",
               "label": "KEY CHANGE TOKEN 2"}]
    s = slip_model(receipt, tokens, title="CREDIT VEND - TAX INVOICE")
    assert [t.label for t in s.tokens] == ["KEY CHANGE TOKEN 1", "KEY CHANGE TOKEN 2",
                                           "CREDIT TOKEN"]
    assert s.tokens[0].digits == "2222 2222 2222 2222 2222" and s.tokens[0].kct
    assert s.instruction.startswith("Enter these two key change tokens first")
    assert s.when == "6 déc. 2026 14:05"  # the utility's zone as stored, its language
    assert s.total[1] == "10\u202f000\xa0F\u202fCFA"
    assert ("VAT 18\xa0%", "1\u202f525,42\xa0F\u202fCFA") in s.lines
    text = slip_text(s)
    assert text.index("2222 2222") < text.index("1111 1111")
    assert "Cashier: awa" in text and "Customer K. Yao" in text
