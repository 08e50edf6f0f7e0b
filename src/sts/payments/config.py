"""The mobile-money face's settings, from the environment (secrets from a 0600 file).

| variable | meaning |
|---|---|
| `STS_MPESA_SHORTCODE` | the paybill number callbacks must carry (default 600000, the demo's) |
| `STS_MPESA_VENDOR` | the vendor whose float the channel sells from (default "M-Pesa") |
| `STS_MPESA_ALLOW` | networks callbacks are accepted from (default loopback: the demo) |
| `STS_MPESA_API` | Daraja's base URL (default the sandbox) |
| `STS_MPESA_CALLBACK_BASE` | our public base URL, for the STK CallBackURL |
| `STS_MPESA_SECRETS` | a file (mode 0600) of `consumer_key=`, `consumer_secret=`, `passkey=` lines |
| `STS_MPESA_CONSUMER_KEY`, `STS_MPESA_CONSUMER_SECRET`, `STS_MPESA_PASSKEY` | or these (the file wins) |

Secrets never come from the command line and are never printed: `Secrets.__repr__` hides them.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from sts.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = "127.0.0.0/8,::1/128"
SANDBOX = "https://sandbox.safaricom.co.ke"


@dataclass(frozen=True)
class Secrets:
    consumer_key: str = field(default="", repr=False)
    consumer_secret: str = field(default="", repr=False)
    passkey: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return "Secrets(<hidden>)"

    @classmethod
    def from_env(cls) -> Secrets:
        """From STS_MPESA_SECRETS (a 0600 file of `consumer_key=`, `consumer_secret=`,
        `passkey=` lines), else STS_MPESA_CONSUMER_KEY / _CONSUMER_SECRET / _PASSKEY."""
        return cls(**_secrets("STS_MPESA", ("consumer_key", "consumer_secret", "passkey")))


def parse_networks(text: str, setting: str = "STS_MPESA_ALLOW") -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"{setting}: {exc}", field=setting) from None


def address_in(networks: tuple[Network, ...], host: str | None) -> bool:
    """Is `host` (a peer's address) in one of the networks callbacks are accepted from?"""
    try:
        addr = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return any(addr in net for net in networks)


@dataclass(frozen=True)
class MobileMoneySettings:
    shortcode: str = "600000"
    vendor: str = "M-Pesa"
    allow: tuple[Network, ...] = parse_networks(LOOPBACK)
    api: str = SANDBOX
    callback_base: str = "http://127.0.0.1:8062"
    secrets: Secrets = Secrets()

    @classmethod
    def from_env(cls) -> MobileMoneySettings:
        env = os.environ
        return cls(shortcode=env.get("STS_MPESA_SHORTCODE", "600000"),
                   vendor=env.get("STS_MPESA_VENDOR", "M-Pesa"),
                   allow=parse_networks(env.get("STS_MPESA_ALLOW", LOOPBACK)),
                   api=env.get("STS_MPESA_API", SANDBOX).rstrip("/"),
                   callback_base=env.get("STS_MPESA_CALLBACK_BASE",
                                         "http://127.0.0.1:8062").rstrip("/"),
                   secrets=Secrets.from_env())

    def allows(self, host: str | None) -> bool:
        return address_in(self.allow, host)


@dataclass(frozen=True)
class MomoSecrets:
    api_user: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)
    subscription_key: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return "MomoSecrets(<hidden>)"

    @classmethod
    def from_env(cls) -> MomoSecrets:
        """From STS_MOMO_SECRETS (a 0600 file of `api_user=`, `api_key=`,
        `subscription_key=` lines), else STS_MOMO_API_USER / _API_KEY / _SUBSCRIPTION_KEY."""
        return cls(**_secrets("STS_MOMO", ("api_user", "api_key", "subscription_key")))


@dataclass(frozen=True)
class MomoSettings:
    """MTN MoMo Collections: `STS_MOMO_API` (default the sandbox), `STS_MOMO_ENVIRONMENT`
    (X-Target-Environment), `STS_MOMO_CURRENCY`, `STS_MOMO_VENDOR` (default "MTN MoMo"),
    `STS_MOMO_ALLOW` (callback networks, default loopback); the callback base is M-Pesa's."""

    api: str = "https://sandbox.momodeveloper.mtn.com"
    environment: str = "sandbox"
    currency: str = "EUR"
    vendor: str = "MTN MoMo"
    allow: tuple[Network, ...] = parse_networks(LOOPBACK)
    callback_base: str = "http://127.0.0.1:8062"
    secrets: MomoSecrets = MomoSecrets()

    @classmethod
    def from_env(cls) -> MomoSettings:
        env = os.environ
        return cls(api=env.get("STS_MOMO_API", cls.api).rstrip("/"),
                   environment=env.get("STS_MOMO_ENVIRONMENT", "sandbox"),
                   currency=env.get("STS_MOMO_CURRENCY", "EUR"),
                   vendor=env.get("STS_MOMO_VENDOR", "MTN MoMo"),
                   allow=parse_networks(env.get("STS_MOMO_ALLOW", LOOPBACK), "STS_MOMO_ALLOW"),
                   callback_base=env.get("STS_MPESA_CALLBACK_BASE",
                                         "http://127.0.0.1:8062").rstrip("/"),
                   secrets=MomoSecrets.from_env())

    def allows(self, host: str | None) -> bool:
        return address_in(self.allow, host)


def _secrets(prefix: str, names: tuple[str, ...]) -> dict[str, str]:
    """A provider's secrets: from the file `<prefix>_SECRETS` names when set (it wins), else
    from the variables `<prefix>_<NAME>`."""
    env = os.environ
    path = env.get(f"{prefix}_SECRETS")
    if path:
        return _secret_lines(path, names, f"{prefix}_SECRETS")
    return {name: env.get(f"{prefix}_{name.upper()}", "") for name in names}


def _secret_lines(path: str, names: tuple[str, ...], setting: str) -> dict[str, str]:
    """`name=value` lines from a file only its owner can read (else a config error)."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the secrets file {path}: {exc.strerror}",
                          field=setting) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} must be readable by its owner only (chmod 600)",
                          field=setting)
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() in names:
            values[name.strip()] = value.strip()
    return values
