"""Fixtures for the XMLVend face: a demo data set with a registered client system, and a
`Client` (`tests.support.xmlvend`) for each vendor profile, over the vending fixtures (SQLite
and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.fixtures import Demo
from tests.support.xmlvend import Client, register


@pytest.fixture(params=["hexing", "conlog"])
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(demo: Demo, profile: str) -> Client:
    register(demo, profile=profile)
    return Client(demo.client)
