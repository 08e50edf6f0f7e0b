"""What the one request being served is: its id, face, caller, purchase and outcome.

The server's request middleware (`sts.server.logs`) opens a `RequestInfo` for every HTTP
request; the service notes on it what only the service knows (the authenticated caller, the
purchase id, a sale, an error code), and the middleware turns it into one log line and the
request metrics.  The audit log stores the request id beside each entry it writes, so an
operator can go from a log line to the audit entry and back.  Outside a request (the CLI, a
campaign, the delivery dispatcher) there is no `RequestInfo` and every `note_*` does nothing.

It is held in a context variable: handler threads run in a copy of the request's context, so
they see the same object and mutate it (never rebind it).
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass

# an X-Request-ID we take as given: 8 to 64 of A-Z a-z 0-9 . _ : - (a UUID fits); anything
# else is replaced by one we make, so no client text of another shape reaches a log line
REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")


@dataclass
class RequestInfo:
    request_id: str
    face: str
    caller: str = ""  # "key:<id>:<role>:<label>", "web:<username>", ...: never a secret
    purchase_id: str = ""
    sales: int = 0  # sales answered (new or repeated) by this request
    error_code: str = ""


_current: ContextVar[RequestInfo | None] = ContextVar("sts_request", default=None)


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID when well-formed, else a new one."""
    if header and REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def enter(info: RequestInfo) -> Token[RequestInfo | None]:
    return _current.set(info)


def leave(token: Token[RequestInfo | None]) -> None:
    _current.reset(token)


def current() -> RequestInfo | None:
    return _current.get()


def request_id() -> str | None:
    info = _current.get()
    return info.request_id if info is not None else None


def face() -> str:
    info = _current.get()
    return info.face if info is not None else "other"


def note_caller(actor: str) -> None:
    """The request's authenticated caller (the first one named wins)."""
    info = _current.get()
    if info is not None and not info.caller:
        info.caller = actor


def note_purchase(purchase_id: str) -> None:
    info = _current.get()
    if info is not None and not info.purchase_id:
        info.purchase_id = purchase_id[:64]


def note_sale() -> None:
    info = _current.get()
    if info is not None:
        info.sales += 1


def note_error(code: str) -> None:
    """The stable error code the request is answered with (the last one noted wins)."""
    info = _current.get()
    if info is not None:
        info.error_code = code
