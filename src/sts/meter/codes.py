"""What each text on the meter's display means, in words a trainee understands.

The texts are the ones `sts.meter.machine` shows (its `RESULTS`, the management and
test/display screens, keypad entry and the credit); `meaning` finds the entry for a text, and
`DISPLAY_CODES` is the legend a page prints beside the meter.
"""

from __future__ import annotations

import re

from sts.errors import N_

# (pattern matched against the whole display text, as shown in the legend, meaning)
DISPLAY_CODES: tuple[tuple[str, str, str], ...] = (
    (r"\d{1,4}(-\d{1,4})*", "1234-5678-…", N_("Digits being typed, in groups of four; the small "
     "number above counts them (a token has 20). Enter ⏎ sends them, ⌫ deletes one.")),
    (r"Accept", "Accept", N_("The token was accepted.")),
    (r"PLS-2nd", "PLS-2nd", N_("The first key change token is held: enter the second one.")),
    (r"PLS-1St", "PLS-1St", N_("A later key change token came first: enter the first one.")),
    (r"PLS-\w+", "PLS-…", N_("Part of a key change is held: enter the token the display names.")),
    (r"Full", "Full", N_("The credit would pass the meter's maximum; the token stays valid: "
     "enter it again once some credit is used.")),
    (r"Reject-\d+", "Reject-1, Reject-2, …", N_("The token failed its check (a mistyped digit, "
     "a token for another meter or made with the wrong key). The number counts wrong "
     "entries in a row; after 3 the keypad locks for a while.")),
    (r"REJECT", "REJECT", N_("The keypad is locked after repeated wrong tokens: wait (10 s, "
     "doubling with each further wrong token) and type carefully.")),
    (r"Err-05", "Err-05", N_("The token was made with a key type this meter does not accept.")),
    (r"Err-07", "Err-07", N_("A value in the token is out of this meter's range.")),
    (r"Err-08", "Err-08", N_("This meter does not support the token's function.")),
    (r"Err-11", "Err-11", N_("The token was made with a vending key that has expired.")),
    (r"Err-12", "Err-12", N_("The token was made with a default key (DDTK) this meter no longer "
     "accepts.")),
    (r"Err-14", "Err-14", N_("The token is for meters of another manufacturer (MfrCode).")),
    (r"Old", "Old", N_("The token is older than the tokens the meter remembers: it is refused.")),
    (r"Used", "Used", N_("This token was already entered on this meter.")),
    (r"OVErLOAd.*", "OVErLOAd", N_("The load is above the power limit: the supply is cut and "
     "comes back by itself after the countdown.")),
    (r"CLr.*", "CLr …", N_("Credit cleared by a management token.")),
    (r"tAMPEr CLr", "tAMPEr CLr", N_("The tamper alarm was cleared by an engineering token.")),
    (r"PL .*", "PL … W", N_("The maximum power limit set by an engineering token.")),
    (r"PU .*", "PU … W", N_("The phase-unbalance limit (test display).")),
    (r"rELAY .*", "rELAY On / OFF", N_("Test display: the supply relay's position.")),
    (r"tAMPEr (On|OFF)", "tAMPEr On / OFF", N_("Test display: the tamper alarm.")),
    (r"8{8,}", "8888…", N_("Test display: every segment lit (LCD test).")),
    (r"E\d* .*", "E …", N_("Test display: energy used, or a register value.")),
    (r"KRN .*", "KRN …", N_("Test display: the key revision number.")),
    (r"TI .*", "TI …", N_("Test display: the tariff index.")),
    (r"P .*", "P … W", N_("Test display: the power drawn now.")),
    (r"VEr .*", "VEr …", N_("Test display: the meter's software version.")),
    (r"Kt .*", "Kt …", N_("Test display: the key type.")),
    (r"rAtE .*", "rAtE …", N_("Test display: the tariff rate.")),
    (r"SGC .*", "SGC …", N_("Test display: the supply group code.")),
    (r"KEN .*", "KEN …", N_("Test display: the key expiry number.")),
    (r"F .*", "F …", N_("Test display: the water meter factor.")),
    (r"rES .*", "rES …", N_("Test display: the last token's result code.")),
    (r"tid .*", "tid …", N_("Test display: the last token's identifier (TID).")),
    (r"rEAd .*", "rEAd …", N_("Test display: the registers a test token asked for.")),
    (r"[\d.]+ ?(kWh|kl|m3|min)?", "12.3 kWh", N_("The credit left.")),
)
_COMPILED = tuple((re.compile(p), meaning) for p, _, meaning in DISPLAY_CODES)


def meaning(text: str) -> str:
    """What the display text means ("" for a blank display)."""
    text = (text or "").strip()
    if not text:
        return N_("The display is off (no power).")
    for pattern, what in _COMPILED:
        if pattern.fullmatch(text):
            return what
    return ""
