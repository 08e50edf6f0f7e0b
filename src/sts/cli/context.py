"""What every service command shares: `--db`, `--kek-file`, `--sta-tables`, the security
module options and `--json`, accepted before or after the subcommand, and opening the service
from them.  The command modules (vending, keys, electrum, delivery) all build on this one."""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from sts.cli.common import emit_json

if TYPE_CHECKING:
    from sts.vending.config import Settings
    from sts.vending.registry.admin import Registry
    from sts.vending.service import VendingService

SECURITY_MODULE_OPTIONS: tuple[tuple[str, str, Any, str], ...] = (
    ("--security-module", "security_module", click.Choice(["software", "pkcs11"]),
     "where vending keys live [env STS_SECURITY_MODULE; default software]"),
    ("--pkcs11-lib", "pkcs11_lib", click.Path(dir_okay=False),
     "PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so [env STS_PKCS11_LIB]"),
    ("--pkcs11-token", "pkcs11_token", str, "label of the token holding the keys [env STS_PKCS11_TOKEN]"),
    ("--pkcs11-pin-file", "pkcs11_pin_file", click.Path(dir_okay=False),
     "file holding the user PIN [env STS_PKCS11_PIN_FILE, or the PIN in STS_PKCS11_PIN]"),
    ("--pkcs11-cache-seconds", "pkcs11_cache_seconds", click.FloatRange(min=0),
     "keep derived decoder keys in memory this long [env STS_PKCS11_CACHE_SECONDS; default 300]"),
)

DEFAULT_DB = "sts-vending.sqlite3"

# --- options shared by every command, accepted before or after the subcommand ----------------
#
# `--db`, `--kek-file` and `--sta-tables` are added to the groups (serve, admin, campaign,
# audit) and to every subcommand under them: `sts admin --db X demo` and `sts admin demo --db X`
# mean the same; the one nearest the command wins.  Values are remembered in `ctx.obj["shared"]`
# and resolved (with the environment and the defaults) only when a command opens the database.
# `--json` is on every command: data as JSON (lists as JSON Lines), errors as JSON too.


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and value is not False:
        obj = ctx.ensure_object(dict)
        obj.setdefault("shared", {})[param.name] = value
    return value


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """`--config FILE` (or STS_CONFIG): read and check the file once, hand this command its
    part as click's default_map and remember the shared options for `settings_of`."""
    if not value or ctx.resilient_parsing:
        return
    from sts.cli.settings_file import load, node_for

    obj = ctx.ensure_object(dict)
    cfg = obj.get("config")
    if cfg is None or cfg.path != value:
        cfg = obj["config"] = load(value)
    node = node_for(cfg, ctx)
    if node is not None:
        ctx.default_map = node


def _shared_params() -> list[click.Parameter]:
    return [
        click.Option(["--config", "config_file"], type=click.Path(dir_okay=False), default=None,
                     envvar="STS_CONFIG", is_eager=True, expose_value=False,
                     callback=_load_config,
                     help="configuration file (TOML; docs/operations.md) [env STS_CONFIG]; "
                     "the environment and the command line override it"),
        click.Option(["--db", "db_url"], default=None, expose_value=False, callback=_remember,
                     help=f"database: a SQLite file or postgresql://... [env STS_DB_URL; "
                     f"default {DEFAULT_DB}]"),
        click.Option(["--kek-file"], default=None, expose_value=False, callback=_remember,
                     help="key-encryption key file (64 hex digits) [env STS_KEK_FILE; or "
                     "STS_KEK]; default for SQLite: <db>.kek"),
        click.Option(["--sta-tables"], type=click.Path(dir_okay=False), default=None,
                     expose_value=False, callback=_remember,
                     help="STA table file with the production tables [env STS_STA_TABLES]"),
        *(click.Option([flag, name], type=kind, default=None, expose_value=False,
                       callback=_remember, help=text)
          for flag, name, kind, text in SECURITY_MODULE_OPTIONS),
    ]


def _no_autoenv(params: list[click.Parameter]) -> list[click.Parameter]:
    """The shared options have their own variables (STS_DB_URL, ...), read in `settings_of`."""
    for p in params:
        if isinstance(p, click.Option):
            p.allow_from_autoenv = False
    return params


def _json_param() -> click.Parameter:
    return click.Option(["--json", "as_json"], is_flag=True, default=False, expose_value=False,
                        callback=_remember, help="machine-readable JSON output",
                        allow_from_autoenv=False)


def add_shared(params: list[click.Parameter]) -> None:
    names = {p.name for p in params}
    params.extend(p for p in _no_autoenv([*_shared_params(), _json_param()])
                  if p.name not in names)


class VendingCommand(click.Command):
    """A command that takes the shared options (and `--json`) wherever it is in the line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_shared(self.params)


class VendingGroup(click.Group):
    """A group whose commands and subgroups all take the shared options."""

    command_class = VendingCommand
    group_class = type  # subgroups are VendingGroups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_shared(self.params)


def _shared(ctx: click.Context) -> dict[str, Any]:
    out: dict[str, Any] = (ctx.find_object(dict) or {}).get("shared", {})
    return out


def shared_values(ctx: click.Context) -> dict[str, Any]:
    """The shared options as given: the command line first, then the environment, then the
    configuration file (`--config`); absent when none gives one."""
    from sts.cli.settings_file import SHARED

    given = _shared(ctx)
    cfg = (ctx.find_object(dict) or {}).get("config")
    out: dict[str, Any] = {}
    for name, var in SHARED.values():
        value = given.get(name) or os.environ.get(var) or (cfg.shared.get(name) if cfg else None)
        if value:
            out[name] = value
    return out


def settings_of(ctx: click.Context, **extra: Any) -> Settings:
    from sts.vending.config import Settings

    given = shared_values(ctx)
    module = {name: given[name] for _, name, _, _ in SECURITY_MODULE_OPTIONS if name in given}
    if "pkcs11_cache_seconds" in module:
        try:
            module["pkcs11_cache_seconds"] = float(module["pkcs11_cache_seconds"])
        except ValueError:
            raise click.BadParameter("must be a number of seconds",
                                     param_hint="pkcs11_cache_seconds") from None
    return Settings(db_url=given.get("db_url") or DEFAULT_DB,
                    kek_file=given.get("kek_file"), sta_tables=given.get("sta_tables"),
                    **module, **extra)


def wants_json(ctx: click.Context) -> bool:
    return bool(_shared(ctx).get("as_json"))


def say(ctx: click.Context, text: str, data: dict[str, Any]) -> None:
    """A command's result: `text` for people, `data` as one JSON object with --json."""
    if wants_json(ctx):
        emit_json(data)
    else:
        click.echo(text)


def open_vending(ctx: click.Context) -> tuple[VendingService, Registry]:
    from sts.vending.config import open_service
    from sts.vending.registry.admin import Registry

    obj = ctx.ensure_object(dict)
    if "service" not in obj:
        settings = settings_of(ctx)
        obj["settings"] = settings
        svc = open_service(settings, run_migrations=True, create_kek=True)
        # its connections close with the command, not whenever the collector gets to them (a
        # program that runs commands in process, like the tests, would pile them up)
        ctx.find_root().call_on_close(svc.db.dispose)
        obj["service"] = svc
        obj["registry"] = Registry(svc.db, svc.sm, actor=f"cli:{os.environ.get('USER', '?')}")
    return obj["service"], obj["registry"]


def parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    from sts.codec.tid import parse_datetime

    return parse_datetime(value, field=name)
