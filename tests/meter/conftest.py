"""Fixtures of the meter tests (helpers live in meter_helpers.py)."""

from __future__ import annotations

import pytest

from tests.meter.meter_helpers import Rig, make_rig


@pytest.fixture
def rig() -> Rig:
    return make_rig()
