"""The one interface every mobile-money provider adapter offers (M-Pesa: `mpesa.py`).

An adapter knows its provider's wire formats and HTTP calls only; what a payment means (a row
first, one sale, exceptions) is the service's (`sts.vending.usecases.payments`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sts.vending.usecases.payments import Payment, Prompt, PromptAnswer, StatementLine

__all__ = ["PromptOutcome", "Provider", "StatementLine"]


@dataclass(frozen=True)
class PromptOutcome:
    """A prompt's result (its callback or a status query): paid with `payment`, or not."""

    request_id: str
    result_code: str
    result_desc: str
    payment: Payment | None


class Provider(Protocol):
    name: str

    def initiate(self, prompt: Prompt) -> PromptAnswer:
        """Ask the provider to prompt the payer's phone."""

    def parse_callback(self, kind: str, body: Any) -> Payment | PromptOutcome:
        """A callback's body, checked field by field (InputError naming the field)."""

    def status(self, request_id: str) -> PromptOutcome | None:
        """A prompt's outcome asked of the provider (None: still pending)."""

    def parse_statement(self, text: str) -> list[StatementLine]:
        """The provider's statement (CSV) as lines."""
