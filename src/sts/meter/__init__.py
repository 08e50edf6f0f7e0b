"""The virtual payment meter (issue 3): a sans-IO state machine, its state file and a fleet.

`Meter` (machine.py) holds every rule; `MeterState` (state.py) is what it works on;
`store` saves and loads state files atomically; `fleet` runs thousands of meters at once.
"""

from sts.meter.clock import Clock, FakeClock
from sts.meter.machine import RESULTS, TEST_FUNCTIONS, Display, Event, Meter, TokenResult
from sts.meter.settings import MeterConfig, Settings, parse_config
from sts.meter.state import MeterState

__all__ = [
    "RESULTS",
    "TEST_FUNCTIONS",
    "Clock",
    "Display",
    "Event",
    "FakeClock",
    "Meter",
    "MeterConfig",
    "MeterState",
    "Settings",
    "TokenResult",
    "parse_config",
]
