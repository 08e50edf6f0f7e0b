"""`sts serve`'s TLS options (`sts.server.tls` does the work)."""

from __future__ import annotations

from typing import Any

import click


def tls_options(func: Any) -> Any:
    """--tls-cert, --tls-key, --tls-client-ca (each also from its STS_TLS_* variable)."""
    path = click.Path(dir_okay=False)
    func = click.option("--tls-client-ca", envvar="STS_TLS_CLIENT_CA", type=path, default=None,
                        help="CA certificate(s) (PEM) client certificates must verify against: "
                        "mutual TLS for Electrum and XMLVend clients bound to a certificate "
                        "[env STS_TLS_CLIENT_CA]")(func)
    func = click.option("--tls-key", envvar="STS_TLS_KEY", type=path, default=None,
                        help="private key (PEM) of --tls-cert, if not in that file "
                        "[env STS_TLS_KEY]")(func)
    return click.option("--tls-cert", envvar="STS_TLS_CERT", type=path, default=None,
                        help="serve HTTPS (TLS 1.2 or newer) with this certificate chain (PEM) "
                        "[env STS_TLS_CERT]")(func)
