"""Tariff versions (sts.vending.tariff_history): a change takes effect at its own time, every
version is kept, and a sale prices on the version in force at the sale's clock time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from sts.errors import InputError
from sts.vending import tariff_history
from sts.vending.tariff_history import Terms


def _units(demo: Any, amount: str = "115") -> str:
    sale = demo.buy(amount=amount)
    assert sale.status_code == 201, sale.text
    units: str = sale.json()["receipt"]["units"]
    return units


def test_sale_prices_on_the_version_in_force_at_its_time(demo: Any) -> None:
    reg, clock = demo.registry, demo.clock
    # Flat: 2.50 a unit + 15 % VAT, so 115.00 buys 40.0 units
    assert _units(demo) == "40.0"
    start = clock() + timedelta(hours=1)
    number = tariff_history.change(reg, "Flat", Terms(
        blocks=[(None, "5.00")], vat_rate="0.15", min_amount="5", max_amount="5000",
        description="flat rate 5.00"), effective_from=start)
    assert number == 2
    # before the effective time: still the old prices (the sale, its trial and the lookup)
    clock.advance(minutes=59, seconds=59)
    assert _units(demo) == "40.0"
    # from the effective time on: the new version
    clock.advance(seconds=1)
    assert _units(demo) == "20.0"
    lookup = demo.client.get(f"/v1/meters/{demo.meters[0]}", headers=demo.h("vendor"))
    assert lookup.status_code == 200, lookup.text
    assert lookup.json()["tariff"]["description"] == "flat rate 5.00"
    # the history keeps both, newest first, as of now
    hist = tariff_history.history(demo.service.db, "Flat", clock())
    assert [(h["version"], h["state"]) for h in hist] == [(2, "in force"), (1, "past")]
    assert hist[0]["blocks"] == [{"up_to": None, "price": "5"}]


def test_a_scheduled_version_and_a_later_change(demo: Any) -> None:
    reg, clock = demo.registry, demo.clock
    later = clock() + timedelta(days=1)
    tariff_history.change(reg, "Flat", Terms(blocks=[("10", "1.00"), (None, "5.00")],
                                             vat_rate="0"), effective_from=later)
    # an immediate change beside the scheduled one: in force now, the scheduled one later
    tariff_history.change(reg, "Flat", Terms(blocks=[(None, "2.00")], vat_rate="0"))
    assert _units(demo, "100") == "50.0"
    hist = tariff_history.history(demo.service.db, "Flat", clock())
    assert [(h["version"], h["state"]) for h in hist] == [(2, "scheduled"), (3, "in force"),
                                                         (1, "past")]
    clock.advance(days=1)
    # the month's first 10 units went with the earlier sale: all at 5.00; another meter
    # still gets its first 10 units at 1.00 (10 + 90.00 / 5.00 = 28)
    assert _units(demo, "100") == "20.0"
    fresh = demo.buy(meter=demo.meters[1], amount="100")
    assert fresh.status_code == 201 and fresh.json()["receipt"]["units"] == "28.0"


def test_a_change_before_now_or_with_bad_blocks_is_refused(demo: Any) -> None:
    reg, clock = demo.registry, demo.clock
    with pytest.raises(InputError) as err:
        tariff_history.change(reg, "Flat", Terms(blocks=[(None, "3")]),
                              effective_from=clock() - timedelta(hours=1))
    assert err.value.field == "effective_from"
    with pytest.raises(InputError) as err:
        tariff_history.change(reg, "Flat", Terms(blocks=[("50", "1"), ("20", "2"), (None, "3")]))
    assert err.value.field == "blocks[1].up_to"
    with pytest.raises(InputError) as err:
        tariff_history.change(reg, "Flat", Terms(blocks=[("50", "1"), ("", "abc")]))
    assert err.value.field == "blocks[1].price"
    assert [h["version"] for h in tariff_history.history(demo.service.db, "Flat", clock())] == [1]
