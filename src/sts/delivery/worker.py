"""The dispatcher: takes due jobs from the outbox, hands them to the carriers, records what
happened, and stores the meters' answers.  It runs off the sale's transaction (a thread in
`sts serve`, or the separate `sts deliver run` process), so delivery never slows a sale.

Crash safety: a job is claimed with a lease (a short transaction), sent, then its outcome is
written (another transaction).  A dispatcher killed in between leaves the lease, which
expires; the job goes again with the same content and id, and the receiver's id check makes
the repeat harmless (at-least-once to the carrier, idempotent at the receiver).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from sts.delivery import answers
from sts.delivery.carriers import Accepted, Carrier, CarrierError, Outcome
from sts.delivery.config import DeliveryConfig
from sts.errors import Unavailable
from sts.vending import outbox
from sts.vending.storage.database import Database

log = logging.getLogger("sts.delivery")
Clock = Callable[[], datetime]
_DB_DOWN = (OperationalError, InterfaceError, Unavailable)


def utc_now() -> datetime:
    """Naive UTC, as the delivery tables store it (shown with its offset: `outbox.public`)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class _Incoming:
    kind: str  # status / online
    pan: str
    payload: dict[str, object]
    ack: Callable[[], None]


class Dispatcher:
    def __init__(self, db: Database, config: DeliveryConfig, *,
                 carriers: dict[str, Carrier] | None = None, clock: Clock = utc_now,
                 rng: random.Random | None = None) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.carriers: dict[str, Carrier] = carriers if carriers is not None else {}
        self.incoming: queue.Queue[_Incoming] = queue.Queue()
        self.handled = 0  # meter messages stored or dropped so far
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="sts-carrier")

    @classmethod
    def from_config(cls, db: Database, config: DeliveryConfig, **kw: object) -> Dispatcher:
        """A dispatcher with the carriers the config enables (SMS and e-mail are always
        present: without a gateway they answer "not configured", so such jobs wait)."""
        from sts.delivery.email_smtp import EmailCarrier
        from sts.delivery.sms_http import SmsCarrier

        d = cls(db, config, **kw)  # type: ignore[arg-type]
        d.carriers["sms"] = SmsCarrier(config.sms)
        d.carriers["email"] = EmailCarrier(config.email)
        if config.ami.broker:
            from sts.delivery.ami_mqtt import AmiCarrier

            d.carriers["ami"] = AmiCarrier(config.ami, on_status=d.meter_status,
                                           on_online=d.meter_online)
        return d

    # --- incoming from meters (called on the MQTT thread) ------------------------------------

    def meter_status(self, pan: str, payload: dict[str, object], ack: Callable[[], None]) -> None:
        self.incoming.put(_Incoming("status", pan, payload, ack))

    def meter_online(self, pan: str, ack: Callable[[], None]) -> None:
        self.incoming.put(_Incoming("online", pan, {}, ack))

    def drain_incoming(self, limit: int = 500, first: _Incoming | None = None) -> int:
        """Store queued meter messages in one transaction, then acknowledge them.  If the
        database is away they go back on the queue unacknowledged; a message that cannot be
        stored for its content is logged and dropped, so it cannot stall every other meter."""
        items: list[_Incoming] = [first] if first is not None else []
        while len(items) < limit:
            try:
                items.append(self.incoming.get_nowait())
            except queue.Empty:
                break
        if not items:
            return 0
        now = self.clock()
        try:
            self._store(items, now)
        except _DB_DOWN:
            for item in items:  # the database is away: keep them, unacknowledged
                self.incoming.put(item)
            raise
        except Exception:
            # a message that cannot be stored (bad data) must not hold the others back:
            # store them one by one, log and drop (acknowledge) the ones that still fail
            for item in items:
                try:
                    self._store([item], now)
                except _DB_DOWN:
                    self.incoming.put(item)
                    continue
                except Exception:
                    log.exception("AMI: dropped a message from meter %s that could not be "
                                  "stored", item.pan)
                item.ack()
            self.handled += len(items)
            return len(items)
        for item in items:
            item.ack()
        self.handled += len(items)
        return len(items)

    def _store(self, items: list[_Incoming], now: datetime) -> None:
        with self.db.begin() as conn, outbox.batched_attempts(conn):
            online = sorted({i.pan for i in items if i.kind == "online"})
            if answers.meter_online(conn, online, now):
                self._wake.set()
            for item in items:
                if item.kind == "status":
                    answers.apply_meter_status(self.db, conn, item.pan, dict(item.payload), now)

    # --- outgoing ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch of due jobs, send them, record the outcomes; returns the count."""
        cfg = self.config
        now = self.clock()
        with self.db.read() as conn:
            if not outbox.any_due(conn, now):
                return 0
        with self.db.begin() as conn:
            jobs = outbox.claim(self.db, conn, now, lease=timedelta(seconds=cfg.lease),
                                limit=cfg.batch)
        if not jobs:
            return 0
        by_channel: dict[str, list[outbox.Job]] = {}
        for job in jobs:
            by_channel.setdefault(job.channel, []).append(job)
        results: dict[int, Outcome] = {}
        futures = []
        for channel, group in by_channel.items():
            carrier = self.carriers.get(channel)
            if carrier is None:
                err = CarrierError(f"no {channel} carrier runs in this dispatcher "
                                   "(for ami: --ami-broker / STS_AMI_BROKER)", down=True)
                results.update({j.id: err for j in group})
                continue
            due, expired = [], []
            for job in group:
                if job.channel == "ami" and job.status == "sent" and \
                        job.attempts >= cfg.ami.max_sends:
                    expired.append(job)
                else:
                    due.append(job)
            for job in expired:
                results[job.id] = CarrierError(
                    f"the meter did not answer after {job.attempts} sends", retry=False)
            if due:
                futures.append((due, self._pool.submit(carrier.send, due)))
        for group, fut in futures:
            try:
                outcomes = fut.result()
            except Exception as exc:  # a carrier bug must not lose the batch
                log.exception("carrier failed")
                outcomes = [CarrierError(f"carrier error: {type(exc).__name__}: {exc}")
                            for _ in group]
            results.update({j.id: o for j, o in zip(group, outcomes, strict=True)})
        done = self.clock()
        with self.db.begin() as conn, outbox.batched_attempts(conn):
            for job in jobs:
                self._record(conn, job, results[job.id], done)
        return len(jobs)

    def _record(self, conn: Connection, job: outbox.Job, outcome: Outcome,
                now: datetime) -> None:
        cfg = self.config
        if isinstance(outcome, Accepted):
            answer_by = None
            if outcome.status == "sent":
                sends = job.attempts + 1
                wait = min(cfg.retry.max_delay * 6,
                           cfg.ami.answer_timeout * cfg.retry.factor ** (sends - 1))
                answer_by = now + timedelta(seconds=wait)
            outbox.finish_sent(conn, job, now, status=outcome.status, detail=outcome.detail,
                               answer_by=answer_by)
            return
        attempt = job.attempts + 1
        give_up = not outcome.retry or (not outcome.down and attempt >= cfg.retry.max_attempts)
        retry_at = None if give_up else now + timedelta(
            seconds=cfg.retry.delay(attempt, self.rng))
        outbox.finish_error(conn, job, now, detail=outcome.message, retry_at=retry_at)

    # --- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        for carrier in self.carriers.values():
            carrier.start()
        self._stop.clear()
        for name, target in (("sts-dispatch", self._loop), ("sts-meter-status", self._status_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=10)
        self._threads.clear()
        for carrier in self.carriers.values():
            carrier.stop()
        self._pool.shutdown(wait=True)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        idle = self.config.poll
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("delivery dispatch failed; retrying")
                busy = 0
            if busy:
                continue
            self._wake.wait(idle)
            self._wake.clear()

    def _status_loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.incoming.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.drain_incoming(first=first)
            except Exception:
                log.exception("storing meter answers failed; they stay unacknowledged")
                self._stop.wait(1.0)
