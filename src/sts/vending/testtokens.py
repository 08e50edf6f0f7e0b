"""Class 1 meter test/display tokens: the same for every meter of a manufacturer code, so a
point of sale can hand them out without a sale.

A meter takes only the form that matches the size of its own manufacturer code: subclass 0
carries a 2-digit code (36 control bits), subclass 1 a 4-digit code (28 control bits).  The
page shows both forms, marks the one the meter takes, and says what the meter shows.
"""

from __future__ import annotations

from typing import Any

from sts.codec.pan import parse_pan
from sts.engine import TokenRequest, generate
from sts.meter import TEST_FUNCTIONS

# what each control bit makes the meter show (our meters' documented assignment)
SHOWS: dict[str, str] = {
    "all": "every test below, one after another",
    "relay": "switches the relay: rELAY On / OFF",
    "lcd": "lights every segment: 8888888888888888",
    "total_energy": "total energy used: E 123.45 kWh",
    "krn": "key revision number: KRN 1",
    "ti": "tariff index: TI 01",
    "power_limit": "maximum power limit: PL 5000 W",
    "tamper_status": "tamper status: tAMPEr On / OFF",
    "power": "power drawn now: P 1500 W",
    "version": "software version: VEr ...",
    "key_type": "key type: Kt 2",
    "phase_unbalance_limit": "phase unbalance limit: PU 700 W",
    "tariff_rate": "tariff rate: rAtE 42",
    "sgc": "supply group code: SGC 123456",
    "ken": "key expiry number: KEN 255",
    "water_meter_factor": "water meter factor: F 13",
    "result_register": "result of the last token: rES 1",
    "last_tid": "newest token identifier: tid 5391240",
}
LABELS = {"all": "All tests", "lcd": "Display (LCD) test", "krn": "Key revision (KRN)",
          "ti": "Tariff index (TI)", "sgc": "Supply group (SGC)", "ken": "Key expiry (KEN)",
          "last_tid": "Last token id (TID)"}


def _token(mfr: str, control: int) -> str:
    sub = 0 if len(mfr) == 2 else 1
    issue = generate(None, TokenRequest(1, sub, {"control": control, "mfr_code": mfr}))
    return issue.tokens[0].token


def for_meter(pan: str) -> dict[str, Any]:
    """Both forms of every test token for a meter's manufacturer code."""
    mfr = parse_pan(pan, field="meter").mfr_code
    two = mfr[-2:]
    four = mfr.rjust(4, "0")
    rows = []
    for bit, name in ((0, "all"), *TEST_FUNCTIONS):
        control = 1 << bit
        rows.append({"function": name, "label": LABELS.get(name, name.replace("_", " ")
                                                           .capitalize()),
                     "shows": SHOWS.get(name, ""), "bit": bit,
                     "token_2": _token(two, control), "token_4": _token(four, control)})
    return {"meter_mfr_code": mfr, "form": 2 if len(mfr) == 2 else 4, "mfr_code_2": two,
            "mfr_code_4": four, "tokens": rows}
