"""Helpers more than one test package uses: real servers and carriers, protocol clients (an
Electrum switch, an XMLVend client), shared set-ups.  Fixtures live in `tests.fixtures` (a
pytest plugin, see tests/conftest.py) and in each package's conftest; helpers live here, so no
test package imports another's conftest or test module."""
