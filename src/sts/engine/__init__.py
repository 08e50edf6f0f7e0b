"""The token engine: `generate(meter, request)` and `decode(token, meter)`.

The names below are loaded on first use, so `sts generate` / `sts decode` (whose common lines
the compiled line engine answers, `sts.engine.stream`) start without loading the engine.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing itself is not loaded for `sts generate` / `sts decode`
if TYPE_CHECKING:
    from typing import Any

    from sts.engine.core import decode, generate, generate_many
    from sts.engine.model import (
        DecodedToken,
        Issue,
        IssuedToken,
        KeyChangeRequest,
        MeterKey,
        TokenRequest,
    )

_WHERE = {
    "decode": "sts.engine.core",
    "generate": "sts.engine.core",
    "generate_many": "sts.engine.core",
    "DecodedToken": "sts.engine.model",
    "Issue": "sts.engine.model",
    "IssuedToken": "sts.engine.model",
    "KeyChangeRequest": "sts.engine.model",
    "MeterKey": "sts.engine.model",
    "TokenRequest": "sts.engine.model",
}

__all__ = [
    "DecodedToken",
    "Issue",
    "IssuedToken",
    "KeyChangeRequest",
    "MeterKey",
    "TokenRequest",
    "decode",
    "generate",
    "generate_many",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'sts.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
