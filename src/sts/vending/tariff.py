"""Money to units: the tariff calculation, free of any database or clock.

A purchase amount (VAT inclusive) pays, in this order: the fixed monthly charge still due
this month, a share of it towards the customer's debt, and energy.  Energy is priced per unit
excluding VAT in monthly blocks (a step tariff with rising blocks, or one open block for a flat
tariff).  Units are rounded down to the token resolution (0.1); all arithmetic is Decimal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from sts.codec.amount import parse_amount_text
from sts.errors import AmountTooHigh, AmountTooLow, InputError, InvalidAmount
from sts.vending.i18n import N_

CENT = Decimal("0.01")
TENTH = Decimal("0.1")
ZERO = Decimal(0)
MAX_AMOUNT_DIGITS = 12


def money(value: Decimal) -> str:
    """A money amount as the API shows it: two places."""
    return str(cents(value))


def cents(value: Decimal) -> Decimal:
    """A money amount to two places: a refusal's value, which reads as `money` in the API's
    message and as the utility writes money on a page (`sts.vending.i18n.said`)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def rate_str(value: Decimal) -> str:
    """A rate (VAT, debt share) as written, without the storage scale: "0.15", not "0.150000"."""
    return f"{value.normalize():f}"


def units_str(value: Decimal) -> str:
    return str(value.quantize(TENTH, rounding=ROUND_DOWN))


def parse_amount(value: object, *, field_name: str = "amount") -> Decimal:
    """A money amount to pay: the codec's one amount rule (a plain ASCII decimal string such
    as "50.00"), greater than zero, at most two decimal places and below 10^12."""
    amount = parse_amount_text(value, field=field_name)
    if amount.adjusted() >= MAX_AMOUNT_DIGITS:
        raise AmountTooHigh(N_("{name} is too large: at most {digits} digits before the "
                               "decimal point"), field=field_name, name=field_name,
                            digits=MAX_AMOUNT_DIGITS)
    if amount <= 0:
        raise AmountTooLow(N_("{name} must be greater than zero"), field=field_name,
                           name=field_name)
    if amount != amount.quantize(CENT, rounding=ROUND_DOWN):
        raise InvalidAmount(N_("{name} has more than two decimal places (cents)"),
                            field=field_name, name=field_name)
    return amount.quantize(CENT)


def parse_decimal(value: object, field_name: str, *, allow_none: bool = False) -> Decimal | None:
    """A non-negative registry figure (price, rate, float, debt) under the one amount rule."""
    if value is None and allow_none:
        return None
    dec = parse_amount_text(value, field=field_name)
    if dec.adjusted() >= MAX_AMOUNT_DIGITS or dec != dec.quantize(Decimal("0.000001")):
        raise InvalidAmount(N_("{name} must be below 10^{digits} with at most 6 decimal "
                               "places"), field=field_name, name=field_name,
                            digits=MAX_AMOUNT_DIGITS)
    return dec


@dataclass(frozen=True)
class Block:
    up_to: Decimal | None  # cumulative monthly units where this block ends; None = open
    price: Decimal  # per unit, excluding VAT


@dataclass(frozen=True)
class Tariff:
    name: str
    blocks: tuple[Block, ...]
    vat_rate: Decimal = ZERO
    fixed_monthly: Decimal = ZERO
    debt_share: Decimal = ZERO
    free_units: Decimal = ZERO
    min_amount: Decimal = ZERO
    max_amount: Decimal | None = None
    description: str = ""
    ti: int | None = None

    def __post_init__(self) -> None:
        if not self.blocks:
            raise InputError(N_("a tariff needs at least one price block"), field="blocks")
        last = None
        for i, b in enumerate(self.blocks):
            if b.price <= 0:
                raise InputError(N_("block prices must be positive"), field=f"blocks[{i}].price")
            if b.up_to is not None and last is not None and b.up_to <= last:
                raise InputError(N_("block limits must rise"), field=f"blocks[{i}].up_to")
            if b.up_to is None and i != len(self.blocks) - 1:
                raise InputError(N_("only the last block may be open"),
                                 field=f"blocks[{i}].up_to")
            last = b.up_to
        if self.blocks[-1].up_to is not None:
            raise InputError("the last block must be open (no up_to)", field="blocks")
        if not ZERO <= self.debt_share <= 1:
            raise InputError("debt_share must be between 0 and 1", field="debt_share")
        if self.vat_rate < 0:
            raise InputError("vat_rate must not be negative", field="vat_rate")

    def blocks_json(self) -> str:
        return json.dumps([[None if b.up_to is None else str(b.up_to), str(b.price)]
                           for b in self.blocks])

    @staticmethod
    def blocks_from_json(text: str) -> tuple[Block, ...]:
        return tuple(Block(None if u is None else Decimal(u), Decimal(p))
                     for u, p in json.loads(text))


@dataclass(frozen=True)
class Step:
    units: Decimal
    price: Decimal
    amount: Decimal  # excluding VAT


@dataclass(frozen=True)
class Quote:
    amount: Decimal
    fixed_charge: Decimal  # incl. VAT
    debt: Decimal
    debt_after: Decimal
    energy_amount: Decimal  # incl. VAT
    energy_net: Decimal
    vat: Decimal  # on energy and the fixed charge
    units: Decimal
    free_units: Decimal
    steps: tuple[Step, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "amount": money(self.amount),
            "units": units_str(self.units),
            "energy_amount": money(self.energy_amount),
            "vat": money(self.vat),
            "fixed_charge": money(self.fixed_charge),
            "debt_recovery": money(self.debt),
            "debt_balance": money(self.debt_after),
            "free_units": units_str(self.free_units),
        }


def check_limits(tariff: Tariff, amount: Decimal) -> None:
    if amount < tariff.min_amount:
        raise AmountTooLow(N_("the minimum purchase is {amount}"), field="amount",
                           amount=cents(tariff.min_amount))
    if tariff.max_amount is not None and amount > tariff.max_amount:
        raise AmountTooHigh(N_("the maximum purchase is {amount}"), field="amount",
                            amount=cents(tariff.max_amount))


def quote(tariff: Tariff, amount: Decimal, *, month_units: Decimal, fixed_paid: Decimal,
          free_issued: Decimal, debt_balance: Decimal) -> Quote:
    """What `amount` buys this month, given what the meter already had this month."""
    check_limits(tariff, amount)
    one_vat = 1 + tariff.vat_rate
    fixed_due = max(ZERO, tariff.fixed_monthly - fixed_paid)
    fixed = min(fixed_due, amount)
    rest = amount - fixed
    debt = min(debt_balance, (rest * tariff.debt_share).quantize(CENT, rounding=ROUND_DOWN))
    debt = max(debt, ZERO)
    energy_amount = rest - debt
    energy_net = (energy_amount / one_vat).quantize(CENT, rounding=ROUND_HALF_UP)
    fixed_net = (fixed / one_vat).quantize(CENT, rounding=ROUND_HALF_UP)
    vat = (energy_amount - energy_net) + (fixed - fixed_net)

    steps: list[Step] = []
    remaining = energy_net
    used = month_units
    units = ZERO
    for block in tariff.blocks:
        if remaining <= 0:
            break
        if block.up_to is not None and used >= block.up_to:
            continue
        room = None if block.up_to is None else block.up_to - used
        cost_room = None if room is None else room * block.price
        if cost_room is None or remaining <= cost_room:
            got = remaining / block.price
            steps.append(Step(got, block.price, remaining))
            units += got
            remaining = ZERO
            break
        assert room is not None
        steps.append(Step(room, block.price, cost_room))
        units += room
        used += room
        remaining -= cost_room
    units = units.quantize(TENTH, rounding=ROUND_DOWN)
    steps = token_steps(steps)
    if units <= 0:
        raise AmountTooLow(N_("{amount} buys no units after charges and debt (energy "
                              "{energy})"), field="amount", amount=cents(amount),
                           energy=cents(energy_amount))
    return Quote(amount, fixed, debt, debt_balance - debt, energy_amount, energy_net, vat, units,
                 free_units_due(tariff, free_issued), tuple(steps))


def token_steps(steps: list[Step]) -> list[Step]:
    """The tariff breakdown in the units the token carries.  THE rounding rule: a token
    carries whole tenths of a unit, rounded down (the customer is never promised energy the
    token does not hold); each step shows the tenths its share adds to the running total,
    so the steps add up exactly to the token's units on every answer and slip."""
    out: list[Step] = []
    total = shown = ZERO
    for s in steps:
        total += s.units
        upto = total.quantize(TENTH, rounding=ROUND_DOWN)
        out.append(Step(upto - shown, s.price, s.amount))
        shown = upto
    return out


def free_units_due(tariff: Tariff, free_issued: Decimal) -> Decimal:
    """The free basic units a meter gets with its next token this month: the tariff's whole
    monthly allowance the first time, nothing once any were issued in the month."""
    return tariff.free_units if tariff.free_units > 0 and free_issued <= 0 else ZERO


def free_units_quote(tariff: Tariff, *, free_issued: Decimal, debt_balance: Decimal) -> Quote:
    """A zero-value request that claims only this month's free units (no charges, no debt
    recovery, no credit units): `free_units` is 0 when none are due."""
    return Quote(ZERO, ZERO, ZERO, debt_balance, ZERO, ZERO, ZERO, ZERO,
                 free_units_due(tariff, free_issued))
