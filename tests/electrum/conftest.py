"""Fixtures for the Electrum interface: a demo data set and a switch (`tests.support.electrum`)
with credentials of its own, over the vending fixtures (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures import Demo, FakeClock, make_demo
from tests.support.electrum import Switch, make_switch


@pytest.fixture
def demo(service: Any, clock: FakeClock) -> Demo:
    return make_demo(service, clock)


@pytest.fixture
def switch(demo: Demo) -> Switch:
    return make_switch(demo)
