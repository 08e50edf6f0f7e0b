"""Human commands: `sts token ...`, `sts key derive`, `sts pan check`.

Each prints readable output, or one JSON object with --json.  The meter is described by
options (vending key + identity, or a bare decoder key) or by --meter FILE with a FORMAT.md
meter object.  Tokens print in groups of four.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from sts.cli.common import emit_json, json_option, tables_option
from sts.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])

_METER_OPTIONS = [
    click.option("--meter", "meter_file", type=click.Path(dir_okay=False, exists=True),
                 help="JSON file with a FORMAT.md meter object (instead of the options below)"),
    click.option("--pan", help="the meter number: 11/13 digits as printed on the meter, or the "
                 "18-digit MeterPAN (spaces and dashes allowed)"),
    click.option("--vending-key", envvar="STS_VENDING_KEY",
                 help="vending key, hex [env STS_VENDING_KEY; prefer the env: argv is visible]"),
    click.option("--decoder-key", help="decoder key, hex (instead of vending key + identity)"),
    click.option("--dkga", type=click.IntRange(1, 4), default=4, show_default=True),
    click.option("--ea", type=click.Choice(["7", "9", "11"]), default="7", show_default=True),
    click.option("--table-set", type=click.Choice(["production", "sample"]),
                 default="production", show_default=True, help="STA tables (EA07)"),
    click.option("--sgc", default="123456", show_default=True),
    click.option("--ti", type=int, default=1, show_default=True),
    click.option("--krn", type=int, default=1, show_default=True),
    click.option("--kt", type=int, default=2, show_default=True),
    click.option("--ken", type=int, default=255, show_default=True),
    click.option("--base-date", type=click.Choice(["1993", "2014", "2035"]), default="2014",
                 show_default=True),
    click.option("--time-zone", envvar="STS_TIME_ZONE", default=None,
                 help="IANA zone of the vending system's clock (e.g. Africa/Johannesburg): "
                 "--at with an offset is converted into it; without it such a time is refused "
                 "[env STS_TIME_ZONE]"),
    tables_option,
]


def meter_options(func: F) -> F:
    for option in reversed(_METER_OPTIONS):
        func = option(func)
    return func


def _meter_obj(o: dict[str, Any]) -> dict[str, Any]:
    if o["meter_file"]:
        try:
            loaded = json.loads(Path(o["meter_file"]).read_text())
        except ValueError as exc:
            raise InputError(f"--meter file is not valid JSON: {exc}", field="meter") from None
        if not isinstance(loaded, dict):
            raise InputError("--meter file must hold a JSON object", field="meter")
        inner = loaded.get("meter", loaded)
        from_file = dict(inner) if isinstance(inner, dict) else dict(loaded)
        if o["time_zone"]:
            from_file["time_zone"] = o["time_zone"]
        return from_file
    obj: dict[str, Any] = {"ea": int(o["ea"]), "table_set": o["table_set"], "ken": o["ken"],
                           "base_date": int(o["base_date"])}
    if o["time_zone"]:
        obj["time_zone"] = o["time_zone"]
    if o["vending_key"]:
        obj.update(pan=_pan(o["pan"]), dkga=o["dkga"], vending_key=o["vending_key"], kt=o["kt"],
                   sgc=o["sgc"], ti=o["ti"], krn=o["krn"])
    elif o["decoder_key"]:
        obj.update(decoder_key=o["decoder_key"], kt=o["kt"])
    else:
        raise InputError("give --vending-key (with --pan and identity), --decoder-key or --meter",
                         field="meter")
    return obj


def _pan(number: str | None) -> str | None:
    """--pan: the 18-digit MeterPAN or the 11/13-digit number printed on the meter."""
    if number is None:
        return None
    from sts.codec.pan import parse_meter_number

    return parse_meter_number(number, field="pan").pan


def _load_meter(o: dict[str, Any]) -> Any:
    from sts.engine.wire import meter_from_json

    return meter_from_json(_meter_obj(o), tables_file=o["sta_tables"])


def _print_issue(issue: Any, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    from sts.codec.digits import group
    from sts.engine.wire import issue_to_json

    if as_json:
        out = issue_to_json(issue)
        out["descriptions"] = [t.description for t in issue.tokens]
        out.update(extra or {})
        emit_json(out)
        return
    for n, t in enumerate(issue.tokens, 1):
        tid = f"  TID {t.tid}" if t.tid is not None else ""
        click.echo(f"{n}. {group(t.token)}   {t.description}{tid}")


def _when(at: str | None, zone: str | None = None) -> str:
    """--at as given, else now: in the vending time zone when one is set (converted by the
    engine), else the machine's local time."""
    if at:
        return at
    if zone:
        from sts.codec.tid import parse_time_zone

        return datetime.now(parse_time_zone(zone)).replace(second=0, microsecond=0).isoformat()
    return datetime.now().replace(second=0, microsecond=0).isoformat()


def _issue(o: dict[str, Any], request: dict[str, Any]) -> None:
    from sts.engine import generate
    from sts.engine.wire import request_from_json

    meter = _load_meter(o) if request.get("class") != 1 else None
    issue = generate(meter, request_from_json(request, meter, tables_file=o["sta_tables"]))
    _print_issue(issue, o["as_json"])


@click.group()
def token() -> None:
    """Make and decode single tokens."""


_SERVICES = {"electricity": 0, "water": 1, "gas": 2, "time": 3}


@token.command()
@meter_options
@click.option("--units", help="credit in kWh / kl / m3 / min (rounded up to 0.1)")
@click.option("--currency", help="currency credit instead of units (5 decimals)")
@click.option("--service", type=click.Choice(list(_SERVICES)), default="electricity",
              show_default=True)
@click.option("--at", help="issue time, ISO-8601: local time, or with an offset (Z, +02:00) "
              "and --time-zone (default now)")
@click.option("--rnd", type=click.IntRange(0, 15), help="random field (default random)")
@json_option
def credit(**o: Any) -> None:
    """A credit token (class 0)."""
    if bool(o["units"]) == bool(o["currency"]):
        raise InputError("give exactly one of --units or --currency", field="units")
    sub = _SERVICES[o["service"]]
    req: dict[str, Any] = {"class": 0, "issued_at": _when(o["at"], o["time_zone"])}
    if o["units"]:
        req.update(subclass=sub, units=o["units"])
    else:
        req.update(subclass=sub + 4, currency=o["currency"])
    if o["rnd"] is not None and o["units"]:
        req["rnd"] = o["rnd"]
    _issue(o, req)


@token.group()
def mgmt() -> None:
    """Management tokens (class 2): power limit, clear credit, clear tamper, ..."""


def _mgmt_command(name: str, subclass: int, value: str | None, help_text: str,
                  value_type: Any = str) -> None:
    @meter_options
    @click.option("--at", help="issue time, ISO-8601: local time, or with an offset (Z, +02:00) "
              "and --time-zone (default now)")
    @click.option("--rnd", type=click.IntRange(0, 15), help="random field (default random)")
    @json_option
    def command(**o: Any) -> None:
        req: dict[str, Any] = {"class": 2, "subclass": subclass,
                               "issued_at": _when(o["at"], o["time_zone"])}
        if value is not None:
            req[value] = o[value]
        if o["rnd"] is not None:
            req["rnd"] = o["rnd"]
        _issue(o, req)

    command.__doc__ = help_text
    if value is not None:
        command = click.option(f"--{value.replace('_', '-')}", value, type=value_type,
                               required=True)(command)
    mgmt.command(name)(command)


_mgmt_command("power-limit", 0, "mpl_watts", "Set maximum power limit (watts).")
_mgmt_command("clear-credit", 1, "register", "Clear a credit register (0-7, 65535 = all).", int)
_mgmt_command("tariff-rate", 2, "rate", "Set tariff rate (16-bit value).", int)
_mgmt_command("clear-tamper", 5, None, "Clear the tamper condition.")
_mgmt_command("phase-unbalance", 6, "mppul_watts",
              "Set maximum phase power unbalance limit (watts).")
_mgmt_command("water-factor", 7, "wmf", "Set water meter factor (16-bit value).", int)


@token.command()
@click.option("--control", default="all", show_default=True,
              help="control bits as an integer, or 'all'")
@click.option("--mfr-code", default="00", show_default=True,
              help="2 digits (36-bit control) or 4 digits (28-bit control)")
@click.option("--subclass", type=click.IntRange(0, 2), default=None,
              help="default: 0 for a 2-digit, 1 for a 4-digit MfrCode")
@json_option
def test(control: str, mfr_code: str, subclass: int | None, as_json: bool) -> None:
    """A test/display token (class 1, not encrypted, any meter of that MfrCode size)."""
    from sts.engine import generate
    from sts.engine.wire import request_from_json

    sub = subclass if subclass is not None else (1 if len(mfr_code) == 4 else 0)
    width = 28 if sub == 1 else 36
    if control == "all":
        bits = (1 << width) - 1
    else:
        try:
            bits = int(control, 0)
        except ValueError:
            raise InputError("--control must be an integer or 'all'", field="control") from None
    req = {"class": 1, "subclass": sub, "control": bits, "mfr_code": mfr_code}
    _print_issue(generate(None, request_from_json(req, None)), as_json)


@token.command()
@meter_options
@click.option("--new-krn", type=int, help="new key revision number (default: unchanged)")
@click.option("--new-ti", type=int, help="new tariff index")
@click.option("--new-kt", type=int, help="new key type")
@click.option("--new-sgc", help="new supply group code (adds the third token for EA07)")
@click.option("--new-base-date", type=click.Choice(["1993", "2014", "2035"]))
@click.option("--new-vending-key", envvar="STS_NEW_VENDING_KEY",
              help="new vending key, hex [env STS_NEW_VENDING_KEY]")
@click.option("--new-ken", type=click.IntRange(0, 255), help="KEN of the new key (default 255)")
@click.option("--rollover", is_flag=True, help="set RO: the meter clears its TID memory")
@click.option("--then-units", help="also issue a credit token under the new key")
@click.option("--at", help="issue time of the follow-up credit (default now)")
@json_option
def keychange(**o: Any) -> None:
    """A key change set (2, 3 or 4 tokens), optionally followed by credit under the new key."""
    new: dict[str, Any] = {}
    for name in ("krn", "ti", "kt"):
        if o[f"new_{name}"] is not None:
            new[name] = o[f"new_{name}"]
    if o["new_sgc"]:
        new["sgc"] = o["new_sgc"]
    if o["new_base_date"]:
        new["base_date"] = int(o["new_base_date"])
    if o["new_vending_key"]:
        new["vending_key"] = o["new_vending_key"]
    if not new:
        raise InputError("say what changes: --new-krn, --new-ti, --new-sgc, ...", field="new")
    kc: dict[str, Any] = {"new_meter": new, "ro": int(o["rollover"]),
                          "third_token": bool(o["new_sgc"]) and o["ea"] == "7"}
    if o["new_ken"] is not None:
        kc["ken"] = o["new_ken"]
    req: dict[str, Any] = {"class": 2, "subclass": 3, "key_change": kc}
    if o["then_units"]:
        req["then"] = {"class": 0, "subclass": 0, "issued_at": _when(o["at"], o["time_zone"]),
                       "units": o["then_units"]}
    _issue(o, req)


@token.command("decode")
@click.argument("token_text", metavar="TOKEN")
@meter_options
@json_option
def decode_cmd(token_text: str, **o: Any) -> None:
    """Decode a token: class, subclass, block and fields (or the meter's error)."""
    from sts.codec.digits import extract_class, parse_token
    from sts.engine import decode
    from sts.engine.wire import decoded_to_json

    token_class, _ = extract_class(parse_token(token_text))
    meter = _load_meter(o) if token_class != 1 else None
    result = decoded_to_json(decode(token_text, meter))
    if o["as_json"]:
        emit_json(result)
        return
    for name, value in result.items():
        click.echo(f"{name:>14}: {value}")


@click.group()
def key() -> None:
    """Decoder keys."""


@key.command()
@meter_options
@json_option
def derive(**o: Any) -> None:
    """Derive a meter's decoder key from a vending key and the meter identity.

    The decoder key is printed (it is the meter's own key); the vending key never is.
    """
    meter = _load_meter(o)
    out = {"decoder_key": meter.decoder_key.hex(), "dkga": meter.dkga, "ea": meter.ea,
           "pan": str(meter.pan) if meter.pan else None, "sgc": meter.sgc, "ti": meter.ti,
           "krn": meter.krn, "kt": meter.kt, "base_date": meter.base_date}
    if o["as_json"]:
        emit_json(out)
    else:
        for name, value in out.items():
            click.echo(f"{name:>12}: {value}")


@click.group()
def pan() -> None:
    """MeterPAN and DRN."""


@pan.command()
@click.argument("number")
@json_option
def check(number: str, as_json: bool) -> None:
    """Check a meter number: 11/13 digits as printed on the meter, or the 18-digit MeterPAN
    (spaces and dashes allowed; exit 2 if invalid)."""
    from sts.codec.pan import parse_meter_number

    p = parse_meter_number(number, field="number")
    out = {"valid": True, "pan": p.pan, "iin": p.iin, "drn": p.drn, "mfr_code": p.mfr_code}
    if as_json:
        emit_json(out)
    else:
        click.echo(f"valid: PAN {p.pan} (IIN {p.iin}, DRN {p.drn}, MfrCode {p.mfr_code})")
