"""How a sale was paid: the tenders a shift's cash-up counts apart.

A sale's `pay_type` (free text of the API, at most 20 characters) names its tender when it is
one of these, in any case; anything else (a mobile-money provider's name, a switch's code) is
stored as no tender and counted as "other".  Only cash goes into the drawer.
"""

from __future__ import annotations

from sts.vending.i18n import N_

TENDERS = ("cash", "card")
LABELS = {"cash": N_("Cash"), "card": N_("Card"), None: N_("Other")}  # shown translated


def tender_of(pay_type: object) -> str | None:
    """The tender a sale's pay_type names, or None."""
    if not isinstance(pay_type, str):
        return None
    word = pay_type.strip().lower()
    return word if word in TENDERS else None
