"""`sts demo`: the engine end to end on a demo meter, using only the published test key.

Derives the demo meter's decoder key (DKGA04), issues a credit token, a key change set with a
credit token under the new key, a management token and a test token, then decodes each back
with the key the meter holds at that moment.  Uses the production STA tables when given
(--sta-tables / STS_STA_TABLES), else the standard's built-in sample tables.
"""

from __future__ import annotations

from typing import Any

import click

from sts.cli.common import emit_json, json_option, tables_option

DEMO_VENDING_KEY = "abababababababab949494949494949401234567"  # published STS test key
DEMO_PAN = "600727000000000009"


@click.command()
@tables_option
@click.option("--at", default="2026-11-21T10:00:00", show_default=True,
              help="issue time of the demo tokens")
@json_option
def demo(sta_tables: str | None, at: str, as_json: bool) -> None:
    """Derive a demo key, issue credit, key change and test tokens, decode them back."""
    from sts.codec.digits import group
    from sts.engine import decode, generate
    from sts.engine.wire import decoded_to_json, meter_from_json, request_from_json

    tables = "production" if sta_tables else "sample"
    meter_obj = {"pan": DEMO_PAN, "dkga": 4, "ea": 7, "table_set": tables,
                 "vending_key": DEMO_VENDING_KEY, "kt": 2, "sgc": "201457", "ti": 1, "krn": 1,
                 "ken": 255, "base_date": 2014}
    meter = meter_from_json(meter_obj, tables_file=sta_tables)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("credit 25.6 kWh", {"class": 0, "subclass": 0, "issued_at": at, "units": "25.6"}),
        ("key change TI 01 -> 02, then 10 kWh", {
            "class": 2, "subclass": 3,
            "key_change": {"new_meter": {"ti": 2}, "ro": 0, "ken": 255, "third_token": False},
            "then": {"class": 0, "subclass": 0, "issued_at": at, "units": "10"}}),
        ("set power limit 5 kW", {"class": 2, "subclass": 0, "issued_at": at,
                                  "mpl_watts": "5000"}),
        ("test token: all tests", {"class": 1, "subclass": 0, "control": (1 << 36) - 1,
                                   "mfr_code": "00"}),
    ]
    report: dict[str, Any] = {
        "meter": {"pan": DEMO_PAN, "sgc": "201457", "ti": 1, "krn": 1, "dkga": 4, "ea": 7,
                  "base_date": 2014, "table_set": tables, "decoder_key": meter.decoder_key.hex()},
        "steps": [],
    }
    if not as_json:
        click.echo(f"Demo meter {DEMO_PAN}  (DKGA04, EA07 {tables} tables, SGC 201457, TI 01, "
                   f"KRN 1, base date 2014)")
        click.echo(f"decoder key: {meter.decoder_key.hex()}  (derived from the published test "
                   "vending key)\n")
    current = meter
    last_tid: int | None = None  # same-minute tokens for the meter get successive TIDs
    for title, req in steps:
        request = request_from_json(req, current, tables_file=sta_tables)
        issue = generate(current if req["class"] != 1 else None, request, after_tid=last_tid)
        last_tid = issue.tid if issue.tid is not None else last_tid
        readers = [current] * len(issue.tokens)
        new_key = getattr(request, "new_key", None)
        if new_key is not None:
            readers[-1] = new_key  # the follow-up credit is read under the new key
        decoded = [decode(t.token, r if t.token_class != 1 else None)
                   for t, r in zip(issue.tokens, readers, strict=True)]
        report["steps"].append({"step": title, "tokens": [t.token for t in issue.tokens],
                                "decoded": [decoded_to_json(d) for d in decoded]})
        if not as_json:
            click.echo(f"== {title}")
            for t, d in zip(issue.tokens, decoded, strict=True):
                summary = ", ".join(f"{k}={v}" for k, v in d.fields.items())
                click.echo(f"   {group(t.token)}  -> {d.kind}: {summary}")
        if new_key is not None:
            current = new_key
    if as_json:
        emit_json(report)
