"""The demo's sandbox (`sts serve --demo`): Daraja, MTN MoMo and an SMS gateway stand-in on
free loopback ports, and the environment that points the server at them, so a person can pay
from `/buy` (the "customer" accepts every prompt after a short delay) and read the token and
the one-time codes on the stand-in phone's inbox page.  A setting already in the environment
(a real Daraja, a real SMS gateway) is left alone: the sandbox fills only what is unset."""

from __future__ import annotations

import os
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from sts.payments.sandbox.daraja import Daraja
from sts.payments.sandbox.momo import MomoStandIn
from sts.payments.sandbox.sms import SmsInbox

DEMO_SHORTCODE = "600000"
PROMPT_DELAY = 3.0  # seconds the demo customer takes to enter their PIN


@dataclass
class Sandbox:
    daraja: Daraja | None = None
    momo: MomoStandIn | None = None
    sms: SmsInbox | None = None
    urls: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        for standin in (self.daraja, self.momo, self.sms):
            if standin is not None:
                standin.stop()


def start(base_url: str, env: MutableMapping[str, str] | None = None) -> Sandbox:
    """Start the stand-ins the environment does not already replace, and set `env`
    (default `os.environ`) so the server (and its workers) use them."""
    if env is None:
        env = os.environ
    box = Sandbox()
    env.setdefault("STS_MPESA_CALLBACK_BASE", base_url)
    if "STS_MPESA_API" not in env:
        key, secret, passkey = (secrets.token_hex(8) for _ in range(3))
        box.daraja = Daraja(consumer_key=key, consumer_secret=secret, passkey=passkey,
                            shortcode=env.get("STS_MPESA_SHORTCODE", DEMO_SHORTCODE),
                            delay=PROMPT_DELAY).start()
        env.update({"STS_MPESA_API": box.daraja.url, "STS_MPESA_CONSUMER_KEY": key,
                    "STS_MPESA_CONSUMER_SECRET": secret, "STS_MPESA_PASSKEY": passkey})
        box.urls["daraja"] = box.daraja.url
    if "STS_MOMO_API" not in env:
        user = "00000000-0000-4000-8000-" + secrets.token_hex(6)
        key, sub = secrets.token_hex(8), secrets.token_hex(8)
        box.momo = MomoStandIn(api_user=user, api_key=key, subscription_key=sub,
                               delay=PROMPT_DELAY).start()
        env.update({"STS_MOMO_API": box.momo.url, "STS_MOMO_API_USER": user,
                    "STS_MOMO_API_KEY": key, "STS_MOMO_SUBSCRIPTION_KEY": sub})
        box.urls["momo"] = box.momo.url
    if "STS_SMS_URL" not in env and "STS_DELIVERY_CONFIG" not in env:
        box.sms = SmsInbox().start()
        env["STS_SMS_URL"] = box.sms.url
        box.urls["sms_inbox"] = box.sms.inbox_url
    return box
