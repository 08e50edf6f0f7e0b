"""The one access policy: which role may do what, and whose records a caller sees.

Every face turns its credential (an API key, a signed-in operator, an Electrum or XMLVend
client) into a `Caller`, and every use case asks this module, never the face:

- `Caller.require(action)`: the role may perform the action (`PERMISSIONS`), else NOT_AUTHORISED;
- `Caller.sees(vendor_id)`: a caller bound to a vendor (cashiers, vendor-bound supervisors,
  switch and terminal credentials) sees only that vendor's sales; utility-wide roles
  (a supervisor without a vendor, admin, auditor, engineer) see every vendor's; a vendor role
  with no vendor sees none.  Use cases answer a sale the caller may not see exactly as one that
  does not exist (UNKNOWN_RECORD), so ids cannot be probed;
- `Caller.vendor_scope()`: the same rule as a filter for lists and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from sts.errors import InputError, NotAuthorised, UnknownRecord
from sts.vending import observe
from sts.vending.i18n import N_

ROLES = ("vendor", "supervisor", "engineer", "admin", "auditor")
EVERY_ROLE = frozenset(ROLES)

# what each action needs (service actions, then the web pages' areas)
PERMISSIONS: dict[str, frozenset[str]] = {
    "lookup": frozenset({"vendor", "supervisor", "engineer", "admin"}),
    "purchase": frozenset({"vendor", "supervisor"}),
    # a sale's stored answer (with its tokens)
    "read_sale": frozenset({"vendor", "supervisor", "admin", "auditor"}),
    "reprint": frozenset({"vendor", "supervisor"}),
    "reverse": frozenset({"supervisor"}),
    # a switch's reversal advice for the vendor's own unconfirmed sale (sts.vending.advices)
    "reverse_advice": frozenset({"vendor", "supervisor"}),
    "confirm_advice": frozenset({"vendor", "supervisor"}),
    "engineering": frozenset({"engineer"}),
    "verify": EVERY_ROLE,
    "audit": frozenset({"auditor", "admin"}),
    # the server's Prometheus metrics (/metrics; a scrape token may be configured instead)
    "read_metrics": frozenset({"auditor", "admin"}),
    "admin": frozenset({"admin"}),
    # token delivery: operators watch deliveries (no tokens in the list); sellers resend their
    # own sales' tokens.  An engineer may list deliveries but never read or resend tokens.
    "deliveries": EVERY_ROLE,
    "resend": frozenset({"vendor", "supervisor"}),
    # mobile money: a channel (the provider's callbacks, as its configured vendor) records
    # payments; supervisors, admins and auditors read them; supervisors and admins settle
    # the exceptions (sell again, mark refunded)
    "collect_payment": frozenset({"vendor"}),
    "payments": frozenset({"supervisor", "admin", "auditor"}),
    "settle_payment": frozenset({"supervisor", "admin"}),
    # a cashier's own shift (open, close, cash-up); the shifts of a vendor (a supervisor's
    # report, in the caller's vendor scope)
    "shift": frozenset({"vendor", "supervisor"}),
    "shifts": frozenset({"supervisor", "admin", "auditor"}),
    # the counter's amount presets (per utility)
    "counter_settings": frozenset({"admin"}),
    # four-eyes on money: a float top-up above the utility's approval amount waits for a
    # second administrator (sts.vending.registry.float_approvals)
    "approve_top_up": frozenset({"admin"}),
    # the web pages' areas
    "point_of_sale": frozenset({"vendor", "supervisor"}),
    "test_tokens": frozenset({"vendor", "supervisor", "engineer"}),
    "back_office": frozenset({"admin", "supervisor"}),
    "people": frozenset({"admin"}),
    "reports": frozenset({"admin", "supervisor", "auditor"}),
    "simulator": EVERY_ROLE,
    # the record pages and their lists: a meter's page (a cashier reaches it from a sale; it
    # shows that caller's vendor's sales only), the registers' searches, a customer's page,
    # engineering and key change tokens on a meter's page, the audit log's entries
    "meter_record": EVERY_ROLE,
    "registers": frozenset({"admin", "supervisor", "engineer", "auditor"}),
    "customer_record": frozenset({"admin", "supervisor", "auditor"}),
    "engineering_tokens": frozenset({"engineer", "admin", "auditor"}),
    "block_note": frozenset({"admin", "supervisor", "engineer", "auditor"}),
    "audit_log": frozenset({"auditor", "admin"}),
    # the simulator shows a meter's decoder key (it plays the meter): engineers and admins
    "decoder_key": frozenset({"engineer", "admin"}),
}
UTILITY_WIDE = frozenset({"supervisor", "engineer", "admin", "auditor"})


class EveryVendor:
    """The vendor scope of a utility-wide caller (a marker: no filter)."""

    def __repr__(self) -> str:
        return "EVERY_VENDOR"


EVERY_VENDOR = EveryVendor()
NO_VENDOR = -1  # the scope of a vendor role without a vendor: matches no sale
VendorScope = int | EveryVendor


def may(role: str, action: str) -> bool:
    return role in PERMISSIONS[action]


@dataclass(frozen=True)
class Caller:
    key_id: int
    role: str
    label: str
    vendor_id: int | None

    def __post_init__(self) -> None:
        observe.note_caller(self.actor)  # the request's log line names its caller

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}:{self.role}:{self.label}"

    def may(self, action: str) -> bool:
        return may(self.role, action)

    def require(self, action: str) -> None:
        if not may(self.role, action):
            raise NotAuthorised(N_("the {role} role may not {action}"), field="authorization",
                                role=self.role, action=action.replace("_", " "))

    def vendor_scope(self) -> VendorScope:
        """The vendor whose records this caller sees, or EVERY_VENDOR."""
        if self.vendor_id is not None:
            return self.vendor_id
        return EVERY_VENDOR if self.role in UTILITY_WIDE else NO_VENDOR

    def sees(self, vendor_id: int | None) -> bool:
        """May this caller see a record sold by `vendor_id`?"""
        scope = self.vendor_scope()
        return scope is EVERY_VENDOR or (vendor_id is not None and vendor_id == scope)

    def must_see(self, vendor_id: int | None, what: str, field: str) -> None:
        """Refuse a record of another vendor exactly as one that does not exist."""
        if not self.sees(vendor_id):
            raise UnknownRecord(N_("no {what}"), field=field, what=what)


def vendor_filter(scope: VendorScope) -> int | None:
    """A scope as the `vendor_id` argument of a list query: None means every vendor."""
    return None if isinstance(scope, EveryVendor) else scope


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(N_("role must be one of {roles}"), field="role", roles=", ".join(ROLES))
    return role
