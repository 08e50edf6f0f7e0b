"""What every CLI command shares: JSON output, the STA tables option and error rendering.

Errors are mapped to exit codes once, here (`sts.errors.exit_code_for`): no traceback reaches
a user for bad input; an unexpected exception (a crash of the tool) prints a one-line message
and exits 70 (EX_SOFTWARE), distinct from 1 = "some lines/inputs failed" (set STS_DEBUG=1 for
the traceback).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
from click.core import ParameterSource

from sts.errors import StsError, exit_code_for

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CRASH = 70  # sysexits EX_SOFTWARE: the tool itself failed, not the input

json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable JSON output")


def _tables_from_root(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--sta-tables given to `sts` itself counts when the command has none of its own."""
    if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
        return value
    root = ctx.find_root().params.get("sta_tables")
    return root if isinstance(root, str) else value


def tables_option(func: F) -> F:
    return click.option(
        "--sta-tables",
        "sta_tables",
        type=click.Path(dir_okay=False),
        envvar="STS_STA_TABLES",
        default=None,
        callback=_tables_from_root,
        help="STA table file (format of sta-tables.json) with the production tables "
        "[env STS_STA_TABLES]; may also be given before the command (`sts --sta-tables F ...`)",
    )(func)


def certificate_options(func: F) -> F:
    """`--cert-file PEM | --cert-sha256 HEX | --clear`: the client certificate a credential is
    bound to (`cert_choice` turns them into one fingerprint or None)."""
    func = click.option("--clear", is_flag=True, help="no certificate any more")(func)
    func = click.option("--cert-sha256", default=None,
                        help="SHA-256 of the certificate's DER form (hex, colons allowed)")(func)
    return click.option("--cert-file", type=click.Path(exists=True, dir_okay=False),
                        default=None, help="the client certificate (PEM)")(func)


def cert_choice(cert_file: str | None, cert_sha256: str | None, clear: bool) -> str | None:
    from pathlib import Path

    from sts.vending.access.certs import check_fingerprint, fingerprint_of_pem

    if sum(1 for given in (cert_file, cert_sha256, clear) if given) != 1:
        raise click.UsageError("give one of --cert-file, --cert-sha256 or --clear")
    if cert_file:
        return fingerprint_of_pem(Path(cert_file).read_text(errors="replace"))
    return check_fingerprint(cert_sha256) if cert_sha256 else None


_SECRET_PARAM = re.compile(r"(?i)^(password|passwd|pwd|pass|secret|token|api_?key|auth)$")


def mask_url(url: str) -> str:
    """`url` fit to print in a start-up line or a log: the password of its user part, and
    any query value named like a secret, shown as ***.  Anything that is not a URL with a
    user part or a query (a SQLite file name) comes back unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hostport}"
    query = "&".join(
        f"{name}=***" if sep and _SECRET_PARAM.match(name) else f"{name}{sep}{value}"
        for name, sep, value in (item.partition("=") for item in parts.query.split("&"))
    ) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, separators=(",", ":"), default=str))


def run_guarded(command: click.Command, argv: list[str] | None) -> int:
    """Run a click command; map our errors to messages and exit codes."""
    wants_json = "--json" in (argv if argv is not None else sys.argv[1:])
    try:
        result = command.main(args=argv, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except StsError as exc:
        if wants_json:
            click.echo(json.dumps({"error": exc.code, "message": exc.message,
                                   **({"field": exc.field} if exc.field else {})}))
        else:
            where = f" ({exc.field})" if exc.field else ""
            click.echo(f"error [{exc.code}]{where}: {exc.message}", err=True)
        return exit_code_for(exc)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("STS_DEBUG"):
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        return EXIT_CRASH
