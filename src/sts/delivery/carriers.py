"""The carrier interface: a carrier takes claimed jobs and says, per job, what happened.

`send` returns one entry per job, in order: an `Accepted` (the carrier took it: `sent` or
`delivered`) or a `CarrierError`.  `retry=True` means the next attempt may succeed;
`down=True` that the carrier itself is unreachable (it delays a job but never fails it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sts.delivery.outbox import Job


@dataclass(frozen=True)
class Accepted:
    status: str  # "sent" (AMI: the broker has it) or "delivered"
    detail: str = ""


class CarrierError(Exception):
    def __init__(self, message: str, *, retry: bool = True, down: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry
        self.down = down


Outcome = Accepted | CarrierError


class Carrier(Protocol):
    channel: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def send(self, jobs: list[Job]) -> list[Outcome]: ...
