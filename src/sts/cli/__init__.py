"""The `sts` command.  Subcommands are imported only when used, so `sts --help` and a single
`sts token decode` start fast (test rigs call the CLI thousands of times); `sts generate` and
`sts decode` with plain options start without click at all (`sts.cli.batch_run.quick`).

The click group (`cli`, `COMMANDS`) lives in `sts.cli.group` and is loaded on first use.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself is not loaded for `sts generate` / `sts decode`
if TYPE_CHECKING:
    from typing import Any

    from sts.cli.group import COMMANDS, LazyGroup, cli

__all__ = ["COMMANDS", "LazyGroup", "cli", "main"]


def __getattr__(name: str) -> Any:
    if name in ("cli", "COMMANDS", "LazyGroup"):
        from sts.cli import group

        return getattr(group, name)
    raise AttributeError(f"module 'sts.cli' has no attribute {name!r}")


def main(argv: list[str] | None = None) -> Any:
    from sts.cli.batch_run import quick

    code = quick(sys.argv[1:] if argv is None else list(argv))
    if code is None:
        from sts.cli.common import run_guarded
        from sts.cli.group import cli

        code = run_guarded(cli, argv)
    sys.exit(code)
