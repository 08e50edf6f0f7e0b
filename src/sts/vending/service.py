"""The vending service: the one entry point every face (REST, CLI, Electrum, web, delivery)
calls.  It is a thin facade: each use case lives in its own module under
`sts.vending.usecases`, and the rules they share in small modules beside this one:

- `meters`: reading a meter (one query, by name) and how a meter may be named;
- `issue`: which key change is due, TID allocation, making tokens;
- `ledger`: request ids, repeats, receipt numbers, storing a transaction;
- `vendor`: who may sell and the vendor's float;
- `tariff`: money to units;  `receipts`: the printable slip;  `clock`: time zones;
- `storage.statements`: the SQL all of them run;  `context`: what a use case works with.

Exactly once is described in `sts.vending.ledger`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from sts.vending import audit
from sts.vending.access.policy import Caller, vendor_filter
from sts.vending.clock import Clock, wall_clock
from sts.vending.context import ServiceContext, load_key
from sts.vending.issue import KeyChange
from sts.vending.meters import SERVICES, UNIT_NAMES, KeyInfo, MeterView
from sts.vending.registry import catalogue
from sts.vending.text import guard
from sts.vending.usecases import (
    advice,
    deliveries,
    engineering,
    free_units,
    keychange,
    lookup,
    payments,
    reporting,
    reprint,
    reversal,
    sale,
    selfservice,
    trial,
    verify,
)

__all__ = ["SERVICES", "UNIT_NAMES", "Clock", "KeyChange", "KeyInfo", "MeterView",
           "ServiceContext", "VendingService", "load_key", "wall_clock"]


class VendingService(ServiceContext):
    """The facade every face calls: one method per use case (`sts.vending.usecases`).  Every
    method is `text.guard`ed: no control character in any text argument reaches a use case."""

    # --- use cases ----------------------------------------------------------------------------

    @guard
    def lookup(self, pan: object, caller: Caller, amount: str | None = None) -> dict[str, Any]:
        return lookup.lookup(self, pan, caller, amount)

    @guard
    def trial(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """The full answer of a sale, without tokens; nothing is stored."""
        return trial.trial(self, body, caller)

    @guard
    def purchase(self, purchase_id: str, body: dict[str, Any],
                 caller: Caller) -> tuple[dict[str, Any], bool]:
        """(answer, created): a new sale, or the stored answer for a repeated id."""
        return sale.purchase_dict(self, purchase_id, body, caller)

    @guard
    def purchase_json(self, purchase_id: str, body: dict[str, Any],
                      api_key: str) -> tuple[str, bool]:
        """The REST face of `purchase`: the API key is checked inside the sale's transaction
        (no second connection), and the answer is the stored JSON text itself."""
        return sale.purchase(self, purchase_id, body, None, api_key)

    @guard
    def claim_free_units(self, request_id: str, meter: object,
                         caller: Caller) -> tuple[dict[str, Any], bool]:
        """This month's free basic units alone (a zero-value sale), once a month per meter."""
        return free_units.claim(self, request_id, meter, caller)

    @guard
    def trial_free_units(self, meter: object, caller: Caller) -> dict[str, Any]:
        """What claiming the month's free units would answer, with no token."""
        return free_units.trial(self, meter, caller)

    @guard
    def sales_of_meter(self, meter: str, caller: Caller) -> list[dict[str, Any]]:
        """A meter's latest sales the caller may reverse (the reversals page)."""
        caller.require("reverse")
        return catalogue.sales_of_meter(self.db, meter,
                                        vendor_id=vendor_filter(caller.vendor_scope()))

    @guard
    def sale_by_receipt(self, receipt_no: str, caller: Caller) -> str:
        """The purchase id of one of the caller's sales by its receipt number."""
        caller.require("reverse")
        return catalogue.sale_by_receipt(self.db, receipt_no,
                                         vendor_id=vendor_filter(caller.vendor_scope()))

    @guard
    def get_purchase(self, purchase_id: str, caller: Caller) -> dict[str, Any]:
        """The stored answer for a purchase id (what a client asks after a timeout)."""
        return reprint.get_purchase(self, purchase_id, caller)

    @guard
    def reprint(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        return reprint.reprint(self, body, caller)

    @guard
    def reverse(self, purchase_id: str, reason: object, caller: Caller, *,
                action: str = "reverse") -> tuple[dict[str, Any], bool]:
        """Cancel a sale whose tokens never reached the customer; its TIDs stay used.
        `action` is the permission checked ("reverse_advice" for a switch's advice)."""
        return reversal.reverse(self, purchase_id, reason, caller, action=action)

    @guard
    def confirm_sale(self, purchase_id: str, confirmation_id: str, caller: Caller) -> bool:
        """A confirmation advice: the sale's tokens reached the customer (True the first time)."""
        return advice.confirm(self, purchase_id, confirmation_id, caller)

    @guard
    def reverse_advice(self, purchase_id: str, reversal_id: str, reason: str,
                       caller: Caller) -> dict[str, Any]:
        """A reversal advice: reverse the caller's unconfirmed sale; idempotent."""
        return advice.reverse(self, purchase_id, reversal_id, reason, caller)

    @guard
    def deliveries(self, caller: Caller, **filters: Any) -> dict[str, Any]:
        """One page of token deliveries the caller may see (`usecases.deliveries`)."""
        return deliveries.list_deliveries(self, caller, **filters)

    @guard
    def rejected_deliveries(self, caller: Caller) -> list[dict[str, Any]]:
        return deliveries.rejected(self, caller)

    @guard
    def resend(self, purchase_id: str, channel: Any, to: Any, lang: Any,
               caller: Caller) -> dict[str, Any]:
        """Send a sale's tokens again to a channel (a new delivery job)."""
        return deliveries.resend(self, caller, purchase_id, channel, to, lang)

    @guard
    def verify_audit(self, caller: Caller) -> dict[str, Any]:
        """Check the audit and transaction hash chains (auditors and admins)."""
        caller.require("audit")
        return audit.verify(self.db).as_dict()

    @guard
    def report(self, caller: Caller, start: datetime, end: datetime,
               by: str) -> dict[str, Any]:
        """The reports page's figures, in the caller's scope (`usecases.reporting`)."""
        return reporting.report(self, caller, start, end, by)

    @guard
    def engineering(self, request_id: str, body: dict[str, Any],
                    caller: Caller) -> tuple[dict[str, Any], bool]:
        return engineering.engineering(self, request_id, body, caller)

    @guard
    def key_change_meter(self, conn: Connection, m: MeterView, kc: KeyChange, *,
                         request_id: str, actor: str, reason: str) -> dict[str, Any]:
        """A key change set alone (campaigns), inside the caller's transaction."""
        return keychange.key_change_meter(self, conn, m, kc, request_id=request_id,
                                          actor=actor, reason=reason)

    @guard
    def key_change_tokens(self, request_id: str, meter: object,
                          caller: Caller) -> tuple[dict[str, Any], bool]:
        """The meter's key change tokens asked for without a purchase (a point of sale)."""
        return keychange.request_tokens(self, request_id, meter, caller)

    @guard
    def verify_token(self, pan: object, token: object, caller: Caller) -> dict[str, Any]:
        """Decode a token with the meter's key and say whether and when this server issued it."""
        return verify.verify_token(self, pan, token, caller)

    # --- mobile money (`usecases.payments`) ---------------------------------------------------

    def channel_caller(self, vendor: str, provider: str) -> Caller:
        """The caller a provider's callbacks act as: the channel's vendor."""
        return payments.channel_caller(self, vendor, provider)

    def validate_payment(self, account: object, amount: object,
                         caller: Caller) -> payments.Verdict:
        """Would this payment be sold? (a paybill's validation call; nothing is stored)"""
        return payments.validate(self, account, amount, caller)

    def receive_payment(self, payment: payments.Payment,
                        caller: Caller) -> tuple[dict[str, Any], bool]:
        """Record a provider transaction, then sell it once (or list it as an exception)."""
        return payments.receive(self, payment, caller)

    def prompt_payment(self, meter: object, amount: object, phone: object, caller: Caller,
                       ask: Any, provider: str = "mpesa", currency: str = "") -> dict[str, Any]:
        """Ask the provider to prompt a phone to pay for a meter (STK push, RequestToPay)."""
        return payments.prompt(self, meter, amount, phone, caller, ask, provider, currency)

    def prompt_result(self, provider: str, request_id: str, result_code: str,
                      result_desc: str, paid: payments.Payment | None,
                      caller: Caller) -> dict[str, Any]:
        """The provider's answer to a prompt: paid (sold once) or cancelled (nothing)."""
        return payments.prompt_result(self, provider, request_id, result_code, result_desc,
                                      paid, caller)

    def retry_payments(self, caller: Caller) -> int:
        """Sell the channel's payments left received by a stop between row and sale."""
        return payments.retry_received(self, caller)

    def payment(self, provider: object, provider_id: object,
                caller: Caller) -> dict[str, Any]:
        """One payment and its sale (supervisors, admins, auditors)."""
        return payments.get(self, provider, provider_id, caller)

    def list_payments(self, caller: Caller, **filters: Any) -> dict[str, Any]:
        """One page of payments (e.g. state=exception) in the caller's scope."""
        return payments.list_payments(self, caller, **filters)

    def settle_payment(self, provider: object, provider_id: object, action: object,
                       reason: object, caller: Caller) -> dict[str, Any]:
        """Settle an exception: sell it again, or record its refund."""
        return payments.settle(self, provider, provider_id, action, reason, caller)

    def describe_meter(self, meter: object, caller: Caller) -> dict[str, Any]:
        """A meter as a paying customer sees it (masked name, amounts allowed)."""
        return payments.describe_meter(self, meter, caller)

    def resend_last_payment(self, phone: object, caller: Caller) -> dict[str, Any]:
        """Resend, by SMS to this phone, the last token it paid for."""
        return payments.resend_last(self, phone, caller)

    def reconcile_payments(self, provider: str, lines: list[payments.StatementLine],
                           caller: Caller) -> dict[str, Any]:
        """A provider's statement against our payments: the differences both ways."""
        return payments.reconcile(self, provider, lines, caller)

    def record_statement(self, provider: str, lines: list[payments.StatementLine],
                         caller: Caller) -> list[dict[str, Any]]:
        """Record and sell the statement's payments we never heard of (lost callbacks)."""
        return payments.record_statement(self, provider, lines, caller)

    def pending_prompts(self, caller: Caller, older_than: float,
                        provider: str = "mpesa") -> list[str]:
        """Prompts unanswered for `older_than` seconds (ask the provider's status query)."""
        return payments.pending_prompts(self, caller, older_than, provider)

    def payments_report(self, caller: Caller, provider: str, start: datetime,
                        end: datetime) -> dict[str, Any]:
        """A channel's payments per state, tied to the channel vendor's sales."""
        return payments.channel_report(self, caller, provider, start, end)

    # --- self-service (the /buy page, USSD): sts.vending.usecases.selfservice -------------------

    @guard
    def self_quote(self, meter: object, amount: object | None,
                   caller: Caller) -> dict[str, Any]:
        """A meter as a customer may see it, and what an amount buys."""
        return selfservice.quote(self, meter, amount, caller)

    @guard
    def self_prompt(self, meter: object, amount: object, phone: object, caller: Caller,
                    ask: Any, provider: str = "mpesa") -> dict[str, Any]:
        """Prompt a phone to pay (rate-limited per phone); returns the ticket to follow it."""
        return selfservice.start_prompt(self, meter, amount, phone, caller, ask, provider)

    @guard
    def self_follow(self, ticket: object, caller: Caller) -> dict[str, Any]:
        """A self-service prompt's state, and its tokens once sold."""
        return selfservice.follow_prompt(self, ticket, caller)

    @guard
    def send_access_code(self, meter: object, caller: Caller, send: Any) -> dict[str, Any]:
        """A one-time code for "my tokens", sent to the meter's number on record."""
        return selfservice.send_code(self, meter, caller, send)

    @guard
    def my_tokens(self, meter: object, code: object, caller: Caller) -> dict[str, Any]:
        """The meter's recent tokens, for the right one-time code."""
        return selfservice.my_tokens(self, meter, code, caller)

    @guard
    def fault_meter(self, meter: object, caller: Caller) -> dict[str, Any]:
        """The meter a customer reports a fault for (blocked ones too), customer masked."""
        return selfservice.fault_meter(self, meter, caller)

    @guard
    def report_fault(self, session_id: str, meter: object, fault_type: str, phone: str,
                     caller: Caller) -> dict[str, Any]:
        """A customer's fault report (USSD), with a reference to quote."""
        return selfservice.report_fault(self, session_id, meter, fault_type, phone, caller)
