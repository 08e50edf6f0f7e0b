"""The message envelope echoed in every response, value for value as received (digest §4).

The echo is taken from the request's own JSON, not from the parsed model, so nothing is
re-formatted (a `time` comes back as the very string sent) and fields newer than our models
travel back untouched.  Our own third-party identifier is appended once; no other
institution's entry is ever changed.
"""

from __future__ import annotations

import os
from typing import Any

from sts.electrum.base import ENVELOPE_FIELDS

ADVICE_FIELDS = ("id", "requestId", "time", "thirdPartyIdentifiers", "stan", "rrn", "amounts")


def our_institution() -> str:
    """The institution id this server uses in thirdPartyIdentifiers."""
    return os.environ.get("STS_ELECTRUM_INSTITUTION", "STS-VENDING")


def with_our_reference(tpis: list[Any], reference: str | None) -> list[Any]:
    ours = our_institution()
    out = list(tpis)
    if reference and not any(isinstance(t, dict) and t.get("institutionId") == ours
                             for t in out):
        out.append({"institutionId": ours, "transactionIdentifier": reference})
    return out


def echo(raw: dict[str, Any], reference: str | None = None) -> dict[str, Any]:
    """The envelope of a Transaction response: the request's fields as received."""
    out = {k: raw[k] for k in ENVELOPE_FIELDS if k in raw and raw[k] is not None}
    out["thirdPartyIdentifiers"] = with_our_reference(out.get("thirdPartyIdentifiers") or [],
                                                      reference)
    return out


def echo_advice(raw: dict[str, Any], reference: str | None = None) -> dict[str, Any]:
    """The body of an advice's 202: the advice's own fields, as received."""
    out = {k: raw[k] for k in ADVICE_FIELDS if k in raw and raw[k] is not None}
    out["thirdPartyIdentifiers"] = with_our_reference(out.get("thirdPartyIdentifiers") or [],
                                                      reference)
    return out
