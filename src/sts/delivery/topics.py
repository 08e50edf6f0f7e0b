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
from typing import Any

VERSION = 1
ROOT = f"sts/v{VERSION}/meters"


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
    if len(pan) != 18 or not pan.isdigit():
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


def decode(payload: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        return None
    return doc
