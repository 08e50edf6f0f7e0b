"""The carrier interface: a carrier takes claimed jobs and says, per job, what happened.

`send` returns one entry per job, in order: an `Accepted` (the carrier took it: `sent` or
`delivered`) or a `CarrierError`.  `retry=True` means the next attempt may succeed;
`down=True` that the carrier itself is unreachable (it delays a job but never fails it).
`watch` is called often by the dispatcher's loop: a carrier with a thread of its own (the
MQTT network thread) starts it again there if it died.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from sts.vending.outbox import Job


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

    def watch(self) -> bool: ...


class PooledCarrier:
    """A carrier that sends each job on its own blocking call, a few at a time on a thread
    pool (SMTP, HTTP gateways); subclasses give `channel` and `_one`."""

    channel: str

    def __init__(self, *, threads: int, thread_name_prefix: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads,
                                        thread_name_prefix=thread_name_prefix)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def watch(self) -> bool:
        return False  # the pool replaces its own threads

    def send(self, jobs: list[Job]) -> list[Outcome]:
        return list(self._pool.map(self._one, jobs))

    def _one(self, job: Job) -> Outcome:
        raise NotImplementedError
