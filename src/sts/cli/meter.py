"""`sts meter ...` (one virtual meter in a state file) and `sts fleet run` (many meters).

Every `meter` command loads the state file under a lock, moves the meter's clock to the
time of the action (`--at`, default now; never backwards), applies the action and saves the
state atomically.  The meter package is imported inside the commands: `sts --help` and the
other command groups do not pay for it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sts.cli.common import emit_json, json_option, tables_option

if TYPE_CHECKING:
    from sts.meter.machine import Event, Meter, TokenResult

F = TypeVar("F", bound=Callable[..., Any])

STATE_ARG = click.argument("state", type=click.Path(dir_okay=False))


def at_option(func: F) -> F:
    return click.option(
        "--at", "at", default=None, metavar="ISO-8601",
        help="simulated wall time of the action (default: now, or the meter's time if the "
        "meter is already ahead of now)",
    )(func)


def _wall_now() -> float:
    from sts.meter.clock import to_seconds

    return to_seconds(datetime.now())


def _resolve_at(at: str | None, meter_now: float) -> float:
    from sts.meter.clock import parse_time

    if at is not None:
        return parse_time(at)
    return max(_wall_now(), meter_now)


@contextmanager
def _session(state: str, at: str | None, sta_tables: str | None) -> Iterator[Meter]:
    """Load, yield a meter whose clock reads the action's time, save (only on success)."""
    from sts.meter import store
    from sts.meter.clock import FakeClock
    from sts.meter.machine import Meter

    with store.locked(state):
        loaded = store.load_state(state, sta_tables)
        meter = Meter(loaded, FakeClock(_resolve_at(at, loaded.env.now)))
        meter.tick()
        yield meter
        store.save_state(state, meter.state)


def _events(events: list[Event]) -> list[dict[str, Any]]:
    from sts.meter.clock import iso

    out = []
    for event in events:
        item = event.as_dict()
        item["t"] = iso(event.t)
        out.append(item)
    return out


def _summary(meter: Meter) -> dict[str, Any]:
    from sts.meter.clock import iso

    return {
        "time": iso(meter.state.env.now),
        "lcd": meter.display().as_dict(),
        "relay": "closed" if meter.relay_closed else "open",
        "events": _events(meter.take_events()),
    }


def _print_human(meter_out: dict[str, Any]) -> None:
    lcd = meter_out["lcd"]
    marks = [name for name in ("credit", "alarm", "tamper") if lcd.get(name)]
    counter = f"[{lcd['counter']:>2}] " if lcd.get("counter") else ""
    power = "" if lcd.get("powered", True) else "  (no power)"
    click.echo(f"LCD   {counter}{lcd['text']}{'  ' + ' '.join(marks) if marks else ''}{power}")
    click.echo(f"relay {meter_out['relay']}    time {meter_out['time']}")
    for event in meter_out["events"]:
        extra = {k: v for k, v in event.items() if k not in ("t", "event")}
        click.echo(f"  {event['t']}  {event['event']}  {json.dumps(extra) if extra else ''}")


def _result_line(result: TokenResult) -> str:
    amount = f"  +{result.amount} {result.unit or ''}".rstrip() if result.amount else ""
    message = f"  ({result.message})" if result.message else ""
    return f"{result.display or '-':<10} {result.result} (code {result.code}){amount}{message}"


def _finish(meter: Meter, as_json: bool, extra: dict[str, Any] | None = None,
            result: TokenResult | None = None) -> None:
    out: dict[str, Any] = {}
    if result is not None:
        out.update(result.as_dict())
    if extra:
        out.update(extra)
    out.update(_summary(meter))
    if as_json:
        emit_json(out)
        return
    if result is not None:
        click.echo(_result_line(result))
    _print_human(out)


# === sts meter ================================================================================


@click.group()
def meter() -> None:
    """A virtual STS payment meter kept in a JSON state file."""


@meter.command("new")
@STATE_ARG
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="meter config: a FORMAT.md meter object plus optional settings")
@click.option("--force", is_flag=True, help="replace an existing state file")
@at_option
@tables_option
@json_option
def new(state: str, config_path: str, force: bool, at: str | None, sta_tables: str | None,
        as_json: bool) -> None:
    """Create a meter state file from a config."""
    from pathlib import Path

    from sts.errors import InputError
    from sts.meter import store
    from sts.meter.clock import FakeClock
    from sts.meter.machine import Meter
    from sts.meter.settings import parse_config

    try:
        doc = json.loads(Path(config_path).read_text())
    except OSError as exc:
        raise InputError(f"cannot read {config_path}: {exc.strerror}", field="config") from None
    except ValueError as exc:
        raise InputError(f"{config_path} is not valid JSON ({exc})", field="config") from None
    config = parse_config(doc)
    with store.locked(state):
        if Path(state).exists() and not force:
            raise InputError(f"{state} exists (use --force to replace it)", field="state")
        tables = sta_tables
        if tables is not None:
            tables = str(Path(tables).resolve())
        created = Meter.create(config, FakeClock(_resolve_at(at, 0.0)), tables_file=tables)
        store.save_state(state, created.state)
    snapshot = created.snapshot()
    if as_json:
        emit_json({"state": state, **_jsonable(snapshot), **_summary(created)})
    else:
        ident = snapshot["identity"]
        click.echo(f"created {state}: EA{ident['ea']:02d} KRN {ident['krn']} TI {ident['ti']} "
                   f"SGC {ident['sgc']} KT {ident['kt']} MfrCode {ident['mfr_code']}")
        _print_human(_summary(created))


def _jsonable(snapshot: dict[str, Any]) -> dict[str, Any]:
    from sts.meter.clock import iso

    out = dict(snapshot)
    out["time"] = iso(snapshot["time"])
    overload = dict(out["overload"])
    overload["trips"] = [iso(t) for t in overload["trips"]]
    if overload["disconnected_until"] is not None:
        overload["disconnected_until"] = iso(overload["disconnected_until"])
    out["overload"] = overload
    out.pop("display", None)
    return out


@meter.command("enter")
@STATE_ARG
@click.argument("token")
@at_option
@tables_option
@json_option
def enter(state: str, token: str, at: str | None, sta_tables: str | None, as_json: bool) -> None:
    """Enter a whole 20-digit token (spaces and dashes allowed)."""
    with _session(state, at, sta_tables) as m:
        result = m.enter(token)
    _finish(m, as_json, result=result)


@meter.command("keys")
@STATE_ARG
@click.argument("keys", nargs=-1, required=True)
@click.option("--gap", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="simulated seconds between key presses")
@at_option
@tables_option
@json_option
def keys(state: str, keys: tuple[str, ...], gap: float, at: str | None, sta_tables: str | None,
         as_json: bool) -> None:
    """Press keypad keys: digits, '#' or 'enter' (enter), '*' or 'back' (backspace).

    Each argument is a run of keys ('1234', '#') or key names ('enter', 'back'); spaces and
    dashes separate groups as a token is printed ('1234 5678 #').
    """
    from sts.meter.clock import FakeClock

    presses = keypad_presses(keys)
    results: list[TokenResult] = []
    with _session(state, at, sta_tables) as m:
        clock = m.clock
        assert isinstance(clock, FakeClock)
        for index, key in enumerate(presses):
            if index and gap:
                clock.advance(gap)
            result = m.press(key)
            if result is not None:
                results.append(result)
    if as_json:
        out: dict[str, Any] = {"results": [r.as_dict() for r in results]}
        if results:
            out.update(results[-1].as_dict())
        out["entry"] = m.state.volatile.entry
        out.update(_summary(m))
        emit_json(out)
        return
    for result in results:
        click.echo(_result_line(result))
    _print_human(_summary(m))


def keypad_presses(words: tuple[str, ...]) -> list[str]:
    """Key presses from the arguments: names stay whole, runs split into keys, spaces and
    dashes between groups are separators (not keys)."""
    presses: list[str] = []
    for word in words:
        for part in word.replace("-", " ").split():
            if part in ("enter", "back"):
                presses.append(part)
            else:
                presses.extend(part)
    return presses


@meter.command("show")
@STATE_ARG
@at_option
@tables_option
@json_option
def show(state: str, at: str | None, sta_tables: str | None, as_json: bool) -> None:
    """Show the display, relay, registers, identity, limits and timers."""
    with _session(state, at, sta_tables) as m:
        snapshot = m.snapshot()
    summary = _summary(m)
    if as_json:
        emit_json({**_jsonable(snapshot), **summary})
        return
    _print_human(summary)
    ident = snapshot["identity"]
    click.echo(f"key   EA{ident['ea']:02d} KT {ident['kt']} KRN {ident['krn']} TI {ident['ti']} "
               f"SGC {ident['sgc']} KEN {ident['ken']} base date {ident['base_date']} "
               f"MfrCode {ident['mfr_code']}")
    credit = ", ".join(f"{k} {v}" for k, v in snapshot["registers"].items() if v != "0.00")
    click.echo(f"credit {credit or 'none'}")
    click.echo(f"load  {snapshot['load_watts']:g} W   voltage {snapshot['voltage']:g} V"
               f"{'' if snapshot['voltage_ok'] else ' (outside window)'}   "
               f"limit {snapshot['max_power_limit_watts'] or 'none'}")
    tid = snapshot["tid_memory"]
    click.echo(f"TIDs  {tid['count']}/{tid['depth']} newest {tid['newest']}   "
               f"last result {snapshot['last_result']}   tamper {snapshot['tamper']}")


@meter.command("advance")
@STATE_ARG
@click.argument("seconds", type=click.FloatRange(min=0))
@click.option("--at", "at", default=None, metavar="ISO-8601",
              help="start from this time instead of the meter's own time")
@tables_option
@json_option
def advance(state: str, seconds: float, at: str | None, sta_tables: str | None,
            as_json: bool) -> None:
    """Let SECONDS of simulated time pass (from the meter's time, or from --at)."""
    from sts.meter import store
    from sts.meter.clock import FakeClock, parse_time
    from sts.meter.machine import Meter

    with store.locked(state):
        loaded = store.load_state(state, sta_tables)
        start = parse_time(at) if at is not None else loaded.env.now
        m = Meter(loaded, FakeClock(start + seconds))
        m.tick()
        store.save_state(state, m.state)
    _finish(m, as_json)


def _act(state: str, at: str | None, sta_tables: str | None, as_json: bool,
         action: Callable[[Meter], None]) -> None:
    with _session(state, at, sta_tables) as m:
        action(m)
    _finish(m, as_json)


@meter.command("load")
@STATE_ARG
@click.argument("watts", type=click.FloatRange(min=0))
@at_option
@tables_option
@json_option
def load(state: str, watts: float, at: str | None, sta_tables: str | None, as_json: bool) -> None:
    """Set the load in watts (drawn while the relay is closed)."""
    _act(state, at, sta_tables, as_json, lambda m: m.set_load(watts))


@meter.command("voltage")
@STATE_ARG
@click.argument("volts", type=click.FloatRange(min=0))
@at_option
@tables_option
@json_option
def voltage(state: str, volts: float, at: str | None, sta_tables: str | None,
            as_json: bool) -> None:
    """Set the supply voltage (the relay operates only within 68-132 % of Un)."""
    _act(state, at, sta_tables, as_json, lambda m: m.set_voltage(volts))


@meter.command("tamper")
@STATE_ARG
@click.argument("kind", type=click.Choice(["cover", "magnetic", "terminal"]), default="cover",
                required=False)
@at_option
@tables_option
@json_option
def tamper(state: str, kind: str, at: str | None, sta_tables: str | None, as_json: bool) -> None:
    """Signal a tamper event: raised hand, relay open until a Clear Tamper token."""
    _act(state, at, sta_tables, as_json, lambda m: m.tamper(kind))


@meter.command("power")
@STATE_ARG
@click.argument("switch", type=click.Choice(["off", "on"]))
@at_option
@tables_option
@json_option
def power(state: str, switch: str, at: str | None, sta_tables: str | None,
          as_json: bool) -> None:
    """Switch the supply off or on (a power cycle resets the keypad lockout)."""
    _act(state, at, sta_tables, as_json, lambda m: m.power(switch == "on"))


@meter.command("flow")
@STATE_ARG
@click.argument("service", type=click.Choice(["water", "gas", "time"]))
@click.argument("rate", type=click.FloatRange(min=0))
@at_option
@tables_option
@json_option
def flow(state: str, service: str, rate: float, at: str | None, sta_tables: str | None,
         as_json: bool) -> None:
    """Set a water/gas/time consumption rate in units per hour."""
    _act(state, at, sta_tables, as_json, lambda m: m.set_flow(service, rate))


# === sts fleet ================================================================================


@click.group()
def fleet() -> None:
    """Simulate many virtual meters from JSON Lines."""


@fleet.command("run")
@click.option("--meters", "meters_path", required=True, type=click.Path(exists=True),
              help="directory of <id>.json configs/state files, or a JSONL of configs with id")
@click.option("--input", "input_path", default="-", type=click.Path(allow_dash=True),
              show_default=True, help='JSON Lines of {"meter": id, "token": ..., "at": ...}')
@click.option("--output", "output_path", default="-", type=click.Path(allow_dash=True),
              show_default=True, help="JSON Lines results, in input order")
@click.option("--save-dir", type=click.Path(file_okay=False), default=None,
              help="write the meters' final states here as <id>.json")
@click.option("--progress/--no-progress", default=None,
              help="progress bar on stderr (default: when stderr is a terminal)")
@at_option
@tables_option
@json_option
def run(meters_path: str, input_path: str, output_path: str, save_dir: str | None,
        progress: bool | None, at: str | None, sta_tables: str | None, as_json: bool) -> int:
    """Feed tokens to a fleet of meters; one result line per input line.

    Exit 0 when every line was processed (a meter's rejection of a token is a result, not a
    failure), 1 when some lines were answered with an error, 70 when the tool crashed.
    """
    from sts.meter.clock import parse_time
    from sts.meter.fleet import Fleet

    runner = Fleet.from_path(meters_path, tables_file=sta_tables)
    default_at = parse_time(at) if at is not None else _wall_now()
    # bytes: a line that is not UTF-8 is one failed line, not a crash
    source = sys.stdin.buffer if input_path == "-" else open(input_path, "rb")  # noqa: SIM115
    sink = sys.stdout if output_path == "-" else open(output_path, "w")  # noqa: SIM115
    if progress is None:
        progress = sys.stderr.isatty()
    started = time.perf_counter()
    count = 0
    try:
        lines = runner.run(source, default_at)
        if progress:
            from rich.progress import Progress, SpinnerColumn, TextColumn

            with Progress(SpinnerColumn(), TextColumn("{task.completed} tokens"),
                          transient=True, console=_stderr_console()) as bar:
                task = bar.add_task("fleet", total=None)
                for out in lines:
                    sink.write(out + "\n")
                    count += 1
                    if count % 1000 == 0:
                        bar.update(task, completed=count)
        else:
            write = sink.write
            for out in lines:
                write(out + "\n")
                count += 1
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        if sink is not sys.stdout:
            sink.close()
        else:
            sink.flush()
    saved = runner.save(save_dir) if save_dir is not None else 0
    elapsed = time.perf_counter() - started
    summary = {"lines": count, "failed": runner.failed, "meters": len(runner),
               "used_meters": len(runner.meters), "saved": saved, "seconds": round(elapsed, 3),
               "per_second": round(count / elapsed) if elapsed > 0 else None}
    if as_json:
        click.echo(json.dumps({"summary": summary}), err=True)
    else:
        failed = f", {runner.failed} line(s) failed" if runner.failed else ""
        click.echo(f"{count} lines{failed}, {len(runner.meters)} meters used, "
                   f"{summary['per_second']} lines/s", err=True)
    return 1 if runner.failed else 0


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


# token delivery: `sts fleet ami` (virtual AMI meters) lives in sts.cli.delivery_parts
def _register_fleet_ami() -> None:
    from sts.cli.delivery_parts import fleet_ami

    fleet.add_command(fleet_ami)


_register_fleet_ami()
