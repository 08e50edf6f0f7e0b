"""The dispatcher: takes due jobs from the outbox, hands them to the carriers, records what
happened, and stores the meters' answers.  It runs off the sale's transaction (a thread in
`sts serve`, or the separate `sts deliver run` process), so delivery never slows a sale.

Crash safety: a job is claimed with a lease (a short transaction), sent, then its outcome is
written (another transaction); a dispatcher told to stop finishes the batch it is sending and
gives back a batch it claimed but has not sent (`outbox.release`), so it leaves no lease.  A
dispatcher killed in between leaves the lease, which expires; the job goes again with the
same content and id, and the receiver's id check makes the repeat harmless (at-least-once to
the carrier, idempotent at the receiver).

The meters' messages arrive on the carrier's thread and are stored here, in batches, by a
thread of their own.  Their number is decided outside (anyone who can publish), so the queue
is bounded: past `MAX_QUEUED` a status is acknowledged and dropped (logged, rate-limited);
the job is sent again after its answer timeout and the meter repeats its answer.  Each loop
restarts whatever thread died (`watch`): a carrier's, or the other loop.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError

from sts.delivery import answers
from sts.delivery.carriers import Accepted, Carrier, CarrierError, Outcome
from sts.delivery.config import DeliveryConfig
from sts.delivery.ratelog import RateLimitedLog
from sts.errors import Unavailable
from sts.vending import outbox
from sts.vending.storage.database import Database

log = logging.getLogger("sts.delivery")
Clock = Callable[[], datetime]
_DB_DOWN = (OperationalError, InterfaceError, Unavailable)
MAX_QUEUED = 20_000  # meter messages waiting to be stored


def utc_now() -> datetime:
    """Naive UTC, as the delivery tables store it (shown with its offset: `outbox.public`)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class _Incoming:
    kind: str  # status / online / wake (no message: held answers are due a look)
    pan: str
    payload: dict[str, object]
    ack: Callable[[], None]
    hold_until: float = 0.0  # monotonic: how long an answer for a job in flight may wait


def _no_ack() -> None:
    pass


_WAKE = _Incoming("wake", "", {}, _no_ack)


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
        self._held: list[_Incoming] = []  # answers for jobs still being sent (status thread)
        self._notes = RateLimitedLog(log)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._threads_lock = threading.Lock()
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
        self._enqueue(_Incoming("status", pan, payload, ack))

    def meter_online(self, pan: str, ack: Callable[[], None]) -> None:
        self._enqueue(_Incoming("online", pan, {}, ack))

    def _enqueue(self, item: _Incoming) -> None:
        if self.incoming.qsize() >= MAX_QUEUED:
            self._notes.warning("AMI: %d meter messages wait to be stored; dropped one from "
                                "meter %s (the job is sent again and the meter repeats its "
                                "answer)", MAX_QUEUED, item.pan)
            item.ack()
            return
        self.incoming.put(item)

    def drain_incoming(self, limit: int = 500, first: _Incoming | None = None) -> int:
        """Store queued meter messages in one transaction, then acknowledge them.  If the
        database is away they go back on the queue unacknowledged; a message that cannot be
        stored for its content is logged and dropped, so it cannot stall every other meter.
        An answer for a job still being sent is held (unacknowledged) and tried again."""
        items: list[_Incoming] = [first] if first is not None and first is not _WAKE else []
        items.extend(self._held)
        self._held = []
        room = limit + len(items)
        while len(items) < room:
            try:
                item = self.incoming.get_nowait()
            except queue.Empty:
                break
            if item is not _WAKE:
                items.append(item)
        if not items:
            return 0
        now = self.clock()
        try:
            held = self._store(items, now)
        except _DB_DOWN:
            for item in items:  # the database is away: keep them, unacknowledged
                self.incoming.put(item)
            raise
        except Exception:
            # a message that cannot be stored (bad data) must not hold the others back:
            # store them one by one, log and drop (acknowledge) the ones that still fail
            held, back = [], []
            for item in items:
                try:
                    held.extend(self._store([item], now))
                except _DB_DOWN:
                    back.append(item)
                except Exception:
                    log.exception("AMI: dropped a message from meter %s that could not be "
                                  "stored", item.pan)
            for item in back:
                self.incoming.put(item)
            gone = {id(b) for b in back}
            items = [i for i in items if id(i) not in gone]
        waiting = {id(h) for h in held}
        for item in items:
            if id(item) not in waiting:
                item.ack()
                self.handled += 1
        self._hold(held)
        return len(items)

    def _hold(self, held: list[_Incoming]) -> None:
        """Keep answers for jobs in flight until their send is recorded, at most about a
        lease (after that the job is sent again and the meter repeats its answer)."""
        clock = time.monotonic()
        for item in held:
            if not item.hold_until:
                item.hold_until = clock + self.config.lease + self.config.ami.publish_timeout
            if clock > item.hold_until:
                self._notes.warning("AMI: meter %s answered a job whose send was never "
                                    "recorded; answer dropped", item.pan)
                item.ack()
                self.handled += 1
            else:
                self._held.append(item)

    def _store(self, items: list[_Incoming], now: datetime) -> list[_Incoming]:
        """Store `items`; returns those to hold (answers for jobs still being sent)."""
        held: list[_Incoming] = []
        with self.db.begin() as conn, outbox.batched_attempts(conn):
            online = sorted({i.pan for i in items if i.kind == "online"})
            if answers.meter_online(conn, online, now):
                self._wake.set()
            for item in items:
                if item.kind == "status":
                    got = answers.apply_meter_status(self.db, conn, item.pan,
                                                     dict(item.payload), now)
                    if got == answers.IN_FLIGHT:
                        held.append(item)
                    elif got is None:
                        self._notes.warning("AMI: meter %s answered for a job it may not "
                                            "answer (not its own AMI job, or not sent); "
                                            "ignored", item.pan)
        return held

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
        if self._stop.is_set():  # stopping: give the batch back for another dispatcher now
            with self.db.begin() as conn:
                outbox.release(conn, [j.id for j in jobs])
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
        if self._held:  # answers that came before their send was recorded: now they can go
            self.incoming.put(_WAKE)
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
        with self._threads_lock:
            for name in ("sts-dispatch", "sts-meter-status"):
                self._start_thread(name)

    def _start_thread(self, name: str) -> None:
        target = self._loop if name == "sts-dispatch" else self._status_loop
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads[name] = t

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._threads_lock:
            threads = list(self._threads.values())
            self._threads.clear()
        for t in threads:
            t.join(timeout=10)
        for carrier in self.carriers.values():
            carrier.stop()
        self._pool.shutdown(wait=True)

    def wake(self) -> None:
        self._wake.set()

    def watch(self) -> None:
        """Start again whatever died: a carrier's own thread (the MQTT network thread), or
        one of this dispatcher's two loops.  Each loop calls it, so either restarts the
        other; `sts deliver run` calls it too."""
        for carrier in list(self.carriers.values()):
            try:
                carrier.watch()
            except Exception:
                log.exception("restarting the %s carrier failed; trying again later",
                              carrier.channel)
        if self._stop.is_set():
            return
        with self._threads_lock:
            for name, t in list(self._threads.items()):
                if not t.is_alive() and not self._stop.is_set():
                    log.error("delivery thread %s stopped unexpectedly; starting it again",
                              name)
                    self._start_thread(name)

    def _loop(self) -> None:
        idle = self.config.poll
        while not self._stop.is_set():
            self.watch()
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
            self.watch()
            try:
                first = self.incoming.get(timeout=0.1 if self._held else 0.2)
            except queue.Empty:
                if not self._held:
                    continue
                first = _WAKE
            try:
                self.drain_incoming(first=first)
            except Exception:
                log.exception("storing meter answers failed; they stay unacknowledged")
                self._stop.wait(1.0)
