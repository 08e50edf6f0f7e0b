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
    def from_file(cls, path: str) -> Secrets:
        """`name=value` lines from a file only its owner can read (else a config error)."""
        return cls(**_secret_lines(path, ("consumer_key", "consumer_secret", "passkey"),
                                   "STS_MPESA_SECRETS"))


def parse_networks(text: str) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"STS_MPESA_ALLOW: {exc}", field="STS_MPESA_ALLOW") from None


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
        secrets_file = env.get("STS_MPESA_SECRETS")
        secrets = Secrets.from_file(secrets_file) if secrets_file else Secrets(
            consumer_key=env.get("STS_MPESA_CONSUMER_KEY", ""),
            consumer_secret=env.get("STS_MPESA_CONSUMER_SECRET", ""),
            passkey=env.get("STS_MPESA_PASSKEY", ""))
        return cls(shortcode=env.get("STS_MPESA_SHORTCODE", "600000"),
                   vendor=env.get("STS_MPESA_VENDOR", "M-Pesa"),
                   allow=parse_networks(env.get("STS_MPESA_ALLOW", LOOPBACK)),
                   api=env.get("STS_MPESA_API", SANDBOX).rstrip("/"),
                   callback_base=env.get("STS_MPESA_CALLBACK_BASE",
                                         "http://127.0.0.1:8062").rstrip("/"),
                   secrets=secrets)

    def allows(self, host: str | None) -> bool:
        """Is a callback from `host` (the peer's address) from a configured network?"""
        try:
            addr = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        return any(addr in net for net in self.allow)


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
        env = os.environ
        path = env.get("STS_MOMO_SECRETS")
        if path:
            values = _secret_lines(path, ("api_user", "api_key", "subscription_key"),
                                   "STS_MOMO_SECRETS")
            return cls(**values)
        return cls(api_user=env.get("STS_MOMO_API_USER", ""),
                   api_key=env.get("STS_MOMO_API_KEY", ""),
                   subscription_key=env.get("STS_MOMO_SUBSCRIPTION_KEY", ""))


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
                   allow=parse_networks(env.get("STS_MOMO_ALLOW", LOOPBACK)),
                   callback_base=env.get("STS_MPESA_CALLBACK_BASE",
                                         "http://127.0.0.1:8062").rstrip("/"),
                   secrets=MomoSecrets.from_env())

    def allows(self, host: str | None) -> bool:
        try:
            addr = ipaddress.ip_address(host or "")
        except ValueError:
            return False
        return any(addr in net for net in self.allow)


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
