"""The `sts` click group.  Subcommands are imported only when used, so `sts --help` and a single
`sts token decode` start fast (test rigs call the CLI thousands of times)."""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute"; each module owns its commands
COMMANDS: dict[str, tuple[str, str]] = {
    "token": ("sts.cli.token:token", "make and decode single tokens (readable output)"),
    "key": ("sts.cli.token:key", "decoder key derivation"),
    "pan": ("sts.cli.token:pan", "MeterPAN and DRN checks"),
    "generate": ("sts.cli.batch:generate", "batch: JSON Lines requests in, tokens out"),
    "decode": ("sts.cli.batch:decode", "batch: JSON Lines tokens in, fields out"),
    "demo": ("sts.cli.demo:demo", "derive a demo key, issue and decode tokens, serve a demo"),
    "meter": ("sts.cli.meter:meter", "virtual payment meter (state file)"),
    "fleet": ("sts.cli.meter:fleet", "simulate many virtual meters from JSON Lines"),
    "serve": ("sts.cli.vending:serve", "run the vending server"),
    "admin": ("sts.cli.vending:admin", "manage SGCs, keys, meters, tariffs, vendors, API keys"),
    "campaign": ("sts.cli.vending:campaign", "bulk key change campaigns"),
    "audit": ("sts.cli.vending:audit", "audit log checks"),
    "deliver": ("sts.cli.deliver:deliver", "token delivery: dispatcher, status, resend"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attr = spec[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # help from the table: listing must not import every subcommand module
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """`sts 0.1.0 (compiled core: yes)`: the version, and which form of the core runs."""
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import version

    from sts.crypto.native import describe

    click.echo(f"sts {version('sts')} ({describe()})")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_version,
              help="Show the version and whether the compiled core is in use, then exit.")
@click.option("--sta-tables", "sta_tables", type=click.Path(dir_okay=False), default=None,
              help="STA table file for every command (same as the command's own --sta-tables)")
def cli(sta_tables: str | None) -> None:
    """STS (IEC 62055-41) prepayment tokens: engine, virtual meter and vending server."""

