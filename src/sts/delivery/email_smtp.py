"""E-mail over SMTP (smtplib): STARTTLS or implicit TLS and AUTH when configured.  The body
is the printable slip (the same text as the printed receipt).

A connection failure or a 4xx answer is retried (4xx is transient in SMTP); a 5xx answer
to the recipient or the data is permanent and fails the job with the server's words.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from sts.delivery.carriers import Accepted, CarrierError, Outcome, PooledCarrier
from sts.delivery.config import EmailConfig
from sts.delivery.messages import email_parts
from sts.vending.outbox import Job


class EmailCarrier(PooledCarrier):
    channel = "email"

    def __init__(self, config: EmailConfig, *, threads: int = 2) -> None:
        super().__init__(threads=threads, thread_name_prefix="sts-smtp")
        self.config = config

    def message(self, job: Job) -> EmailMessage:
        subject, body = email_parts(job)
        msg = EmailMessage()
        msg["From"] = self.config.sender
        msg["To"] = job.recipient
        msg["Subject"] = subject
        # one id per job: a re-sent attempt is recognisably the same message
        domain = self.config.sender.rpartition("@")[2] or "localhost"
        msg["Message-ID"] = make_msgid(idstring=f"sts-delivery-{job.id}", domain=domain)
        msg["X-STS-Purchase"] = job.request_id
        msg.set_content(body)
        return msg

    def _tls(self) -> ssl.SSLContext:
        """Certificates and host names are always checked; `ca_file` trusts a private CA."""
        return ssl.create_default_context(cafile=self.config.ca_file or None)

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        if c.ssl:
            return smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout, context=self._tls())
        smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout)
        if c.starttls:
            try:
                smtp.starttls(context=self._tls())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _one(self, job: Job) -> Outcome:
        c = self.config
        if not c.host:
            return CarrierError("no SMTP server is configured (email.host / STS_SMTP_URL)",
                                down=True)
        try:
            smtp = self._connect()
        except ssl.SSLCertVerificationError as exc:
            return CarrierError(f"SMTP server's certificate is not trusted ({exc.verify_message});"
                                " set email.ca_file for a private CA", down=True)
        except (OSError, smtplib.SMTPException) as exc:
            return CarrierError(f"SMTP server unreachable: {exc}", down=True)
        try:
            if c.username:
                smtp.login(c.username, c.password)
            refused = smtp.send_message(self.message(job))
            if refused:
                code, text = next(iter(refused.values()))
                return CarrierError(f"SMTP refused the recipient: {code} {text!r}",
                                    retry=code < 500)
            return Accepted("delivered", "SMTP server accepted the message")
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return CarrierError(f"SMTP refused the recipient: {code} {_text(text)}",
                                retry=code < 500)
        except smtplib.SMTPResponseException as exc:
            return CarrierError(f"SMTP error {exc.smtp_code} {_text(exc.smtp_error)}",
                                retry=exc.smtp_code < 500)
        except (OSError, smtplib.SMTPException) as exc:
            return CarrierError(f"SMTP failed: {exc}", retry=True)
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
