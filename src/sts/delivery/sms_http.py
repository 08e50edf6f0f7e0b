"""SMS through an HTTP SMS gateway: a generic adapter (URL, auth, JSON or form body from a
template, a success rule), stdlib urllib only.

Success: the HTTP status is in `ok_status` (default: any 2xx) and, when `ok_contains` is
set, the response body contains it.  Failures: a connection error means the gateway is down
(retried, never failed); 5xx, 408 and 429 are retried; any other 4xx is permanent (a wrong
number or a refused account will not succeed later) and fails the job with the gateway's
answer as the reason.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request

from sts.delivery.carriers import Accepted, CarrierError, Outcome, PooledCarrier
from sts.delivery.config import SmsConfig
from sts.delivery.messages import facts, sms_text
from sts.vending.outbox import Job

RETRY_STATUS = frozenset({408, 425, 429})


class SmsCarrier(PooledCarrier):
    channel = "sms"

    def __init__(self, config: SmsConfig, *, threads: int = 4) -> None:
        super().__init__(threads=threads, thread_name_prefix="sts-sms")
        self.config = config

    def request(self, job: Job) -> urllib.request.Request:
        values = facts(job) | {"to": job.recipient,
                               "text": sms_text(job, self.config.templates)}
        return build_request(self.config, values, f"sts-delivery-{job.id}")

    def _one(self, job: Job) -> Outcome:
        if not self.config.url:  # before the request: urllib refuses an empty address
            return CarrierError("no SMS gateway is configured (sms.url / STS_SMS_URL)",
                                down=True)
        return post(self.config, self.request(job))


def build_request(c: SmsConfig, values: dict[str, str], key: str) -> urllib.request.Request:
    """The gateway request for a message (`values`: to, text and the facts the configured
    body template may name)."""
    values = values | {"sender": c.sender}
    body = {name: template.format(**values) for name, template in c.fields.items()}
    if c.format == "json":
        data = json.dumps(body).encode()
        ctype = "application/json"
    else:
        data = urllib.parse.urlencode(body).encode()
        ctype = "application/x-www-form-urlencoded"
    headers = {"Content-Type": ctype, "User-Agent": "sts-delivery/1", "Idempotency-Key": key}
    if c.auth:
        headers["Authorization"] = c.auth
    elif c.username:
        pair = f"{c.username}:{c.password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return urllib.request.Request(c.url, data=data, headers=headers, method=c.method)


def post(c: SmsConfig, request: urllib.request.Request) -> Outcome:
    """Send one request to the gateway and judge its answer (see the module docstring)."""
    if not c.url:
        return CarrierError("no SMS gateway is configured (sms.url / STS_SMS_URL)", down=True)
    try:
        with urllib.request.urlopen(request, timeout=c.timeout) as resp:
            status, text = resp.status, resp.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status = exc.code
        text = exc.read(4096).decode("utf-8", "replace") if exc.fp else ""
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return CarrierError(f"SMS gateway unreachable: {reason}", down=True)
    ok = status in c.ok_status if c.ok_status else 200 <= status < 300
    if ok and (not c.ok_contains or c.ok_contains in text):
        return Accepted("delivered", f"gateway HTTP {status}: {text[:200]}")
    detail = f"gateway HTTP {status}: {text[:200]}"
    if status >= 500 or status in RETRY_STATUS or ok:
        return CarrierError(detail, retry=True)
    return CarrierError(detail, retry=False)


def send_text(c: SmsConfig, to: str, text: str, key: str) -> Outcome:
    """One SMS that belongs to no sale (a one-time code), sent now rather than queued:
    the person is waiting for it on the page."""
    if not c.url:
        return CarrierError("no SMS gateway is configured (sms.url / STS_SMS_URL)", down=True)
    values = {"to": to, "text": text, "receipt_no": "", "purchase_id": "", "meter": "",
              "tokens": "", "units": "", "unit": "", "amount": ""}
    return post(c, build_request(c, values, key))
