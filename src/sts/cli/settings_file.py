"""The configuration file (TOML) of `sts serve`, `sts deliver` and `sts campaign`.

Every option may come from the file (`--config FILE` or `STS_CONFIG`), from the environment or
from the command line; the command line wins over the environment, which wins over the file.
The file's sections are the commands, its keys their options (long names, `-` or `_`); the
options every service command shares (`db`, `kek_file`, the security module's) sit at the top:

    db = "postgresql://sts@db/sts"
    kek_file = "/etc/sts/kek"

    [serve]
    host = "0.0.0.0"
    port = 8443
    tls_cert = "/etc/sts/tls/server.pem"

    [deliver.run]
    ami_broker = "mqtts://broker:8883?ca_file=/etc/sts/tls/ca.pem"

    [campaign.run]
    workers = 2

The file is checked whole when it is read, against the real commands: an unknown section or
key, or a value the option refuses, is an error naming the file and the key.  The values reach
the commands through click's `default_map`, so click itself keeps the precedence; the shared
options are resolved in `sts.cli.context.settings_of` in the same order.
"""

from __future__ import annotations

import importlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

import click

from sts.cli.common import mask_url
from sts.errors import ConfigError

ENV_CONFIG = "STS_CONFIG"

# top-level key -> (parameter name, environment variable) of the options every command shares
SHARED: dict[str, tuple[str, str]] = {
    "db": ("db_url", "STS_DB_URL"),
    "kek_file": ("kek_file", "STS_KEK_FILE"),
    "sta_tables": ("sta_tables", "STS_STA_TABLES"),
    "security_module": ("security_module", "STS_SECURITY_MODULE"),
    "pkcs11_lib": ("pkcs11_lib", "STS_PKCS11_LIB"),
    "pkcs11_token": ("pkcs11_token", "STS_PKCS11_TOKEN"),
    "pkcs11_pin_file": ("pkcs11_pin_file", "STS_PKCS11_PIN_FILE"),
    "pkcs11_cache_seconds": ("pkcs11_cache_seconds", "STS_PKCS11_CACHE_SECONDS"),
}
DEFAULT_DB = "sts-vending.sqlite3"

# the sections: command name -> where the click command lives
SECTIONS: dict[str, str] = {
    "serve": "sts.cli.vending:serve",
    "deliver": "sts.cli.deliver:deliver",
    "campaign": "sts.cli.vending:campaign",
}
# options that are not configuration (how one run prints, or the file itself)
NOT_CONFIG = frozenset({"as_json", "help", "config_file", *(n for n, _ in SHARED.values())})
# an option whose value is a secret, shown as *** (a *_file option names a file: shown)
_SECRET = re.compile(r"(?i)(password|passwd|secret|token|pin|api_?key)$")


def command(name: str) -> click.Command:
    module, attr = SECTIONS[name].split(":")
    found: click.Command = getattr(importlib.import_module(module), attr)
    return found


def options_of(cmd: click.Command) -> dict[str, click.Option]:
    """The configurable options of a command, by their key in the file (long name, `_`)."""
    out: dict[str, click.Option] = {}
    for param in cmd.params:
        if not isinstance(param, click.Option) or param.name in NOT_CONFIG:
            continue
        longs = [o for o in param.opts if o.startswith("--")]
        key = (longs[0][2:] if longs else str(param.name)).replace("-", "_")
        out[key] = param
    return out


@dataclass
class ConfigFile:
    path: str
    shared: dict[str, Any] = field(default_factory=dict)  # parameter name -> value
    default_map: dict[str, Any] = field(default_factory=dict)  # click's, by command name


def _fail(path: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {key}: {message}", field=key)


def _check_value(path: str, where: str, cmd: click.Command, option: click.Option,
                 value: Any) -> Any:
    try:
        return option.type_cast_value(click.Context(cmd), value)
    except click.BadParameter as exc:
        raise _fail(path, where, exc.message) from None


def _section(path: str, where: str, cmd: click.Command, table: Any) -> dict[str, Any]:
    """One command's table as click's default_map (a group's holds its subcommands')."""
    if not isinstance(table, dict):
        raise _fail(path, where, "must be a table ([section])")
    out: dict[str, Any] = {}
    options = options_of(cmd)
    subcommands = cmd.commands if isinstance(cmd, click.Group) else {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        here = f"{where}.{raw_key}"
        if key in options:
            option = options[key]
            _check_value(path, here, cmd, option, value)
            out[str(option.name)] = value
        elif raw_key in subcommands:
            out[raw_key] = _section(path, here, subcommands[raw_key], value)
        else:
            known = sorted([*options, *subcommands])
            raise _fail(path, here, f"unknown key (sts {where.replace('.', ' ')} takes: "
                        f"{', '.join(known) or 'no options'})")
    return out


def load(path: str) -> ConfigFile:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}",
                          field="config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", field="config") from None
    out = ConfigFile(path)
    for key, value in data.items():
        if key in SHARED:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise _fail(path, key, "must be a string (or a number of seconds)")
            out.shared[SHARED[key][0]] = str(value)
        elif key in SECTIONS:
            out.default_map[key] = _section(path, key, command(key), value)
        else:
            raise _fail(path, key, f"unknown key (the top level takes {', '.join(SHARED)} and "
                        f"the sections {', '.join(f'[{s}]' for s in SECTIONS)})")
    return out


def node_for(cfg: ConfigFile, ctx: click.Context) -> dict[str, Any] | None:
    """The part of the default_map that belongs to `ctx`'s command (None: not configured)."""
    names: list[str] = []
    c: click.Context | None = ctx
    while c is not None:
        names.insert(0, c.info_name or "")
        c = c.parent
    while names and names[0] not in SECTIONS:
        names.pop(0)
    node: Any = cfg.default_map
    for name in names:
        node = node.get(name) if isinstance(node, dict) else None
    return node if isinstance(node, dict) and names else None


# --- the effective configuration (`sts admin config show`) -----------------------------------


def shown(key: str, value: Any) -> Any:
    """A value fit to print: secrets as ***, URLs without their passwords."""
    if value is None:
        return None
    if _SECRET.search(key) and not key.endswith("_file"):
        return "***"
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


# the commands that run as services: `config show` lists all their options (of the others,
# the per-run options of `sts deliver list` and the like, only those the file or env sets)
SERVICES = ("serve", "deliver.run", "campaign.run")


def _env_of(option: click.Option, prefix: str) -> str:
    if isinstance(option.envvar, str):
        return option.envvar
    return f"{prefix}_{str(option.name).upper()}"


def _default(option: click.Option) -> Any:
    value = option.default
    if value is None or isinstance(value, str | int | float | bool | list | tuple):
        return value
    return False if option.is_flag else None  # a callable default, or click's "unset"


def _targets() -> list[tuple[str, click.Command, str]]:
    """(dotted name, command, auto-env prefix) of every configurable command."""
    out: list[tuple[str, click.Command, str]] = []

    def walk(name: str, cmd: click.Command, prefix: str) -> None:
        prefix = (cmd.context_settings.get("auto_envvar_prefix") or prefix).replace("-", "_")
        if options_of(cmd):
            out.append((name, cmd, prefix))
        if isinstance(cmd, click.Group):
            for sub_name, sub in sorted(cmd.commands.items()):
                walk(f"{name}.{sub_name}", sub, f"{prefix}_{sub_name.upper()}")

    for section in SECTIONS:
        walk(section, command(section), f"STS_{section.upper()}")
    return out


def effective(cfg: ConfigFile | None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Every option's value and where it comes from (file, env or default), secrets masked."""
    env = dict(os.environ) if env is None else env
    out: dict[str, Any] = {}
    for key, (name, var) in SHARED.items():
        value: Any
        if env.get(var):
            value, source = env[var], f"env {var}"
        elif cfg is not None and name in cfg.shared:
            value, source = cfg.shared[name], "file"
        else:
            value, source = (DEFAULT_DB if key == "db" else None), "default"
        out[key] = {"value": shown(key, value), "source": source}
    for dotted, cmd, prefix in _targets():
        node: Any = cfg.default_map if cfg is not None else {}
        for part in dotted.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        for key, option in options_of(cmd).items():
            var = _env_of(option, prefix)
            if env.get(var):  # as click reads it: an empty variable is unset
                value, source = env[var], f"env {var}"
            elif str(option.name) in node:
                value, source = node[str(option.name)], "file"
            elif dotted in SERVICES:
                value, source = _default(option), "default"
            else:
                continue
            out[f"{dotted}.{key}"] = {"value": shown(key, value), "source": source}
    return out
