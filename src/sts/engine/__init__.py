"""The token engine: `generate(meter, request)` and `decode(token, meter)`."""

from sts.engine.core import decode, generate, generate_many
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
    "generate_many",
]
