"""`sts admin config show`: the configuration `sts serve`, `sts deliver` and `sts campaign`
would run with here (the file named by --config or STS_CONFIG, the environment, the
defaults), each value with where it comes from; secrets masked.  The file's format is in
`sts.cli.settings_file`."""

from __future__ import annotations

import click

from sts.cli.common import emit_json
from sts.cli.context import VendingGroup, wants_json


@click.group("config", cls=VendingGroup)
def config() -> None:
    """The configuration file (TOML) of sts serve, deliver and campaign."""


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective configuration (secrets masked) and where each value comes from."""
    from sts.cli.settings_file import effective

    cfg = ctx.ensure_object(dict).get("config")
    options = effective(cfg)
    if wants_json(ctx):
        emit_json({"config_file": cfg.path if cfg else None, "options": options})
        return
    click.echo(f"# configuration file: {cfg.path if cfg else '(none: --config or STS_CONFIG)'}")
    for key, item in options.items():
        value = "" if item["value"] is None else repr(item["value"])
        click.echo(f"{key} = {value}".ljust(60) + f"  # {item['source']}")
