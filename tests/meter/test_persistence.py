"""The state file: a faithful round trip, checksum, and crash safety (fault injection at
every step of a write, and writers killed with SIGKILL at random moments)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sts.errors import MeterStateError
from sts.meter import FakeClock, Meter, MeterState
from sts.meter import store as store_module
from sts.meter.store import load_state, save_state
from tests.meter.meter_helpers import Rig, make_rig


def busy_rig() -> Rig:
    """A meter in the middle of everything: credit, lockout, key change, overload, screens."""
    rig = make_rig(max_credit="5000")
    rig.meter.enter(rig.credit("100"))
    rig.meter.enter(rig.management(0, mpl_watts=1000, at="2024-02-01T10:05:00"))
    kct = rig.token({"class": 2, "subclass": 3, "key_change": {
        "new_meter": {"krn": 2, "kt": 2, "ti": 3}, "ro": 0, "ken": 255}})
    assert rig.meter.enter(kct[0]).result == "key_change_1"
    rig.meter.set_load(1500)
    rig.advance(10)
    for _ in range(4):
        rig.meter.enter(rig.wrong_token())
    rig.meter.press("1")
    rig.meter.press("2")
    assert rig.meter.state.volatile.overload_since is not None
    assert rig.meter.state.volatile.lockout_until is not None
    return rig


def test_state_json_round_trip_and_identical_behaviour(tmp_path: Path) -> None:
    rig = busy_rig()
    body = rig.meter.state.to_json()
    path = tmp_path / "m.json"
    save_state(path, rig.meter.state)
    loaded = load_state(path)
    assert loaded.to_json() == body
    twin = Meter(loaded, FakeClock(rig.clock.now()))
    twin_clock = twin.clock
    assert isinstance(twin_clock, FakeClock)
    for step in (5, 16, 100, 3600):
        rig.advance(step)
        twin_clock.advance(step)
        twin.tick()
        assert twin.display() == rig.meter.display()
        assert twin.state.to_json() == rig.meter.state.to_json()
    token = rig.credit("7", at="2024-02-02T10:00:00")
    assert twin.enter(token) == rig.meter.enter(token)


def test_checksum_detects_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    rig = make_rig()
    save_state(path, rig.meter.state)
    doc = json.loads(path.read_text())
    doc["memory"]["registers"]["electricity"] = "1000000"
    path.write_text(json.dumps(doc))
    with pytest.raises(MeterStateError, match="checksum"):
        load_state(path)


@pytest.mark.parametrize("content", [b"", b"{", b'{"format": "other"}', b"[1, 2]"])
def test_unreadable_state_files_are_reported(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.json"
    path.write_bytes(content)
    with pytest.raises(MeterStateError):
        load_state(path)
    with pytest.raises(MeterStateError, match="no meter state"):
        load_state(tmp_path / "missing.json")


class Crash(Exception):
    pass


class _FaultyOs:
    """Stands in for the `os` module inside the store: the `fail_at`-th file-system call
    raises (a write first goes half-way: a torn write)."""

    NAMES = ("open", "write", "fsync", "close", "replace", "unlink")

    def __init__(self, fail_at: int, calls: list[str]) -> None:
        self.fail_at, self.calls = fail_at, calls

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in self.NAMES:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if len(self.calls) == self.fail_at:
                if name == "write":
                    os.write(args[0], bytes(args[1][: len(args[1]) // 2]))
                raise Crash(name)
            return real(*args, **kwargs)

        return call


def _faulty_os(monkeypatch: pytest.MonkeyPatch, fail_at: int, calls: list[str]) -> None:
    monkeypatch.setattr(store_module, "os", _FaultyOs(fail_at, calls))


def test_a_crash_at_any_step_of_a_write_leaves_old_or_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.json"
    rig = make_rig()
    save_state(path, rig.meter.state)
    old = load_state(path).to_json()
    rig.meter.enter(rig.credit("10"))
    new = rig.meter.state.to_json()
    assert old != new
    probe: list[str] = []
    _faulty_os(monkeypatch, 10**9, probe)
    save_state(tmp_path / "probe.json", rig.meter.state)
    steps = len(probe)
    assert steps >= 5  # open, write, fsync, close, replace, (dir) open, fsync, close
    seen = set()
    for fail_at in range(1, steps + 1):
        monkeypatch.undo()
        save_state(path, make_rig().meter.state)  # back to the old state
        calls: list[str] = []
        _faulty_os(monkeypatch, fail_at, calls)
        with pytest.raises(Crash):
            save_state(path, rig.meter.state)
        monkeypatch.undo()
        got = load_state(path).to_json()
        assert got in (old, new)
        seen.add("new" if got == new else "old")
    assert seen == {"old", "new"}  # both sides of the rename were exercised


WRITER = """
import json, sys
from sts.meter import FakeClock, Meter
from sts.meter.store import load_state, save_state
path, tokens = sys.argv[1], json.load(open(sys.argv[2]))
while True:
    state = load_state(path)
    done = len(state.memory.tids)
    if done >= len(tokens):
        break
    meter = Meter(state, FakeClock(state.env.now))
    assert meter.enter(tokens[done]).result == "accept"
    save_state(path, meter.state)
    print(done + 1, flush=True)
"""


@pytest.mark.slow
def test_writers_killed_at_random_moments_never_tear_the_state(tmp_path: Path) -> None:
    rig = make_rig(tid_memory_depth=1000, max_credit=None)
    tokens = [rig.credit("1", at=f"2024-02-{1 + n // 600:02d}T{10 + n % 600 // 60:02d}:"
                                 f"{n % 60:02d}:00") for n in range(400)]
    assert len(set(tokens)) == len(tokens)
    tokens_file = tmp_path / "tokens.json"
    tokens_file.write_text(json.dumps(tokens))
    path = tmp_path / "m.json"
    save_state(path, rig.meter.state)
    rng = random.Random(62055)
    done = 0
    for _ in range(12):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(tokens_file)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        for _ in range(rng.randint(1, 25)):
            if not child.stdout.readline():
                break
        child.send_signal(signal.SIGKILL)  # lands anywhere in the next load-enter-save loop
        child.wait()
        child.stdout.close()
        state: MeterState = load_state(path)
        count = len(state.memory.tids)
        assert state.memory.registers["electricity"] == Decimal(count)  # credit matches TIDs
        assert count >= done  # nothing durable is ever lost
        done = count
    assert done > 12
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 1  # at most the last killed writer's, cleaned by the next write
