"""The token engine: `generate(meter, request)` and `decode(token, meter)`."""

from sts.engine.core import decode, generate
from sts.engine.model import (
    DecodedToken,
    Issue,
    IssuedToken,
    KeyChangeRequest,
    MeterKey,
    TokenRequest,
)

__all__ = [
    "DecodedToken",
    "Issue",
    "IssuedToken",
    "KeyChangeRequest",
    "MeterKey",
    "TokenRequest",
    "decode",
    "generate",
]
