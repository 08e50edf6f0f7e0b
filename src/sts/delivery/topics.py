"""The AMI topic tree and payloads (version 1; documented in docs/delivery.md).

    sts/v1/meters/{pan}/tokens   down, QoS 1: the tokens of one delivery, in issue order
    sts/v1/meters/{pan}/status   up,   QoS 1: the meter's answer to one tokens message
    sts/v1/meters/{pan}/online   up,   QoS 1: the meter (re)connected; unanswered jobs go again

Payloads are UTF-8 JSON objects with `"v": 1`.  A tokens message carries `id` (the delivery
job id, a string): a meter answers each id once and repeats that answer for a duplicate, so
at-least-once delivery never enters a token twice.  The answer models the DLMS/COSEM token
gateway (interface class 115) `token_status` per token, plus the meter's own result.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

VERSION = 1
ROOT = f"sts/v{VERSION}/meters"
# Bounds on what a message from outside may make us parse.  A status message of a key change
# sale is under 2 KB and three levels deep (object, results list, result object).
MAX_PAYLOAD = 64 * 1024
MAX_DEPTH = 8


# DLMS/COSEM token gateway (IC 115) token_status codes
TOKEN_STATUS = ("FORMAT_OK", "AUTHENTICATION_OK", "VALIDATION_OK", "TOKEN_EXECUTION_OK",
                "TOKEN_FORMAT_FAILURE", "AUTHENTICATION_FAILURE", "VALIDATION_RESULT_FAILURE",
                "TOKEN_EXECUTION_RESULT_FAILURE", "TOKEN_RECEIVED")
# the virtual meter's results (sts.meter RESULTS) -> token_status
RESULT_STATUS = {
    "accept": "TOKEN_EXECUTION_OK",
    "key_change_1": "VALIDATION_OK", "key_change_2": "VALIDATION_OK",
    "format": "TOKEN_FORMAT_FAILURE",
    "reject": "AUTHENTICATION_FAILURE",
    "used": "VALIDATION_RESULT_FAILURE", "old": "VALIDATION_RESULT_FAILURE",
    "range": "VALIDATION_RESULT_FAILURE", "function": "VALIDATION_RESULT_FAILURE",
    "key_type": "VALIDATION_RESULT_FAILURE", "key_expired": "VALIDATION_RESULT_FAILURE",
    "ddtk": "VALIDATION_RESULT_FAILURE", "mfr_code": "VALIDATION_RESULT_FAILURE",
    "full": "TOKEN_EXECUTION_RESULT_FAILURE", "lockout": "TOKEN_EXECUTION_RESULT_FAILURE",
    "not_ready": "TOKEN_EXECUTION_RESULT_FAILURE",
}

def tokens_topic(pan: str) -> str:
    return f"{ROOT}/{pan}/tokens"


def status_topic(pan: str) -> str:
    return f"{ROOT}/{pan}/status"


def online_topic(pan: str) -> str:
    return f"{ROOT}/{pan}/online"


STATUS_SUBSCRIPTION = f"{ROOT}/+/status"
ONLINE_SUBSCRIPTION = f"{ROOT}/+/online"


def pan_of(topic: str) -> tuple[str, str] | None:
    """(pan, leaf) of a topic in this tree, or None."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != ROOT:
        return None
    pan, leaf = parts[3], parts[4]
    if len(pan) != 18 or not pan.isascii() or not pan.isdigit():
        return None
    return pan, leaf


def tokens_message(delivery_id: int, request_id: str, kind: str, response: dict[str, Any],
                   receipt_no: str) -> bytes:
    toks = response.get("tokens") if isinstance(response.get("tokens"), list) else []
    body = {
        "v": VERSION, "id": str(delivery_id), "purchase_id": request_id, "kind": kind,
        "receipt_no": receipt_no,
        "tokens": [{"position": i, "token": t.get("token"), "kind": t.get("kind"),
                    "class": t.get("class"), "subclass": t.get("subclass"),
                    **({"units": t["units"]} if t.get("units") is not None else {})}
                   for i, t in enumerate(toks or [])],
    }
    return json.dumps(body, separators=(",", ":")).encode()


# one JSON string (escapes included, possessive: no backtracking), or one bracket, or a quote
# that opens a string never closed
_SCAN = re.compile(r'"(?:[^"\\]|\\.)*+"|[\[\]{}"]')


class Refused(ValueError):
    """A message that is not one of ours; `reason` says why without quoting it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _nesting_ok(text: str, limit: int) -> bool:
    """Whether `text` nests arrays and objects at most `limit` deep, found in one linear
    pass before the parser sees it (the parser recurses once per level: thousands of `[`
    would exhaust the stack of the thread that reads the broker)."""
    depth = 0
    for m in _SCAN.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > limit:
                return False
        elif c in "]}":
            depth -= 1
        elif c == '"':  # a string that never ends: not JSON
            return False
    return True


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: stored, it would make our own JSON invalid
        raise ValueError("number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(payload: bytes) -> dict[str, Any]:
    """A payload from the broker as a version-1 object, or `Refused`.  Anyone who can
    publish may send anything (any size, depth, encoding), so every bound is checked before
    parsing and nothing here raises anything but `Refused`."""
    if len(payload) > MAX_PAYLOAD:
        raise Refused(f"payload of {len(payload)} bytes (limit {MAX_PAYLOAD})")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("payload is not UTF-8") from None
    if not _nesting_ok(text, MAX_DEPTH):
        raise Refused(f"payload nested deeper than {MAX_DEPTH} or not JSON")
    try:
        doc = json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise Refused("payload is not JSON") from None
    if not isinstance(doc, dict):
        raise Refused("payload is not a JSON object")
    v = doc.get("v")
    if type(v) is not int or v != VERSION:  # (true == 1 in Python, not here)
        raise Refused(f"payload is not version {VERSION}")
    return doc


def decode(payload: bytes) -> dict[str, Any] | None:
    """`parse`, with None for a message that is not one of ours."""
    try:
        return parse(payload)
    except Refused:
        return None
