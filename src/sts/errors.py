"""Every error the project raises, each with a stable code.

Codes are part of the public contract: the CLI prints them in JSON Lines output, the REST API
returns them, scripts match on them.  Exit codes and HTTP statuses are mapped here, once.
Messages name the field and the rule that failed; they never contain key material.
"""

from __future__ import annotations


def N_(text: str) -> str:
    """Mark `text` for translation (`./run messages` extracts it); it is translated where a
    face shows it.  Here, below every layer, so the meter's texts and every error's template
    are marked the same way."""
    return text


class StsError(Exception):
    """Base class: `code` is stable, `message` is for people, `field` names the culprit.

    A message people meet on the pages is written as a template marked for translation, its
    values apart: `UnknownMeter(N_("meter {pan} is not registered"), pan=pan)`.  `message`
    is the English (the API's, the CLI's, the log's); a page shows `template` translated,
    filled with `params` (`sts.vending.i18n.said`)."""

    code = "error"
    exit_code = 1
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None, **params: object) -> None:
        text = message.format(**params) if params else message
        super().__init__(text)
        self.message = text
        self.field = field
        self.template = message
        self.params = params

    def as_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


# --- bad input: the caller sent something that cannot be what it claims to be -------------


class InputError(StsError):
    code = "invalid_input"
    exit_code = 2
    http_status = 422


class TokenFormatError(InputError):
    """The token text is not 20 decimal digits or exceeds 66 bits."""

    code = "token_format"


class InvalidPan(InputError):
    code = "invalid_pan"


class InvalidDrn(InputError):
    code = "invalid_drn"


class AmountOutOfRange(InputError):
    code = "amount_out_of_range"


class InvalidAmount(InputError):
    """An amount that is not written as a plain ASCII decimal string (e.g. "50.00")."""

    code = "invalid_amount"


class InvalidMeterNumber(InputError):
    """A meter number (11/13-digit DRN or 18-digit MeterPAN) that is malformed or fails its
    check digit: the customer should re-read the number printed on the meter."""

    code = "invalid_meter_number"


class TidOutOfRange(InputError):
    """The issue time cannot be expressed as a 24-bit TID for this base date."""

    code = "tid_out_of_range"


class KeyDataError(InputError):
    """Key material (vending key, decoder key) has the wrong length or format."""

    code = "invalid_key"


class ConfigError(StsError):
    """A configuration file (e.g. an STA table set) is missing or malformed."""

    code = "config"
    exit_code = 3
    http_status = 500


class InsecureFile(ConfigError):
    """A file holding secrets (decoder keys, passwords) that group or others may read: it is
    refused rather than used, so the exposure is noticed and fixed (the message says how)."""

    code = "insecure_file"


class NotSupported(StsError):
    """A defined but unimplemented algorithm (e.g. DKGA01/DKGA03: no reliable definition)."""

    code = "not_supported"
    exit_code = 2
    http_status = 422


# --- vending-side refusals -------------------------------------------------------------


class KeyExpired(StsError):
    """TID >> 16 exceeds the key's KEN: the meter would reject the token."""

    code = "key_expired"
    exit_code = 4
    http_status = 409


class DdtkError(StsError):
    """A default key (DDTK, KT 1) may not carry credit."""

    code = "ddtk"
    exit_code = 4
    http_status = 409


# --- meter-side token rejections (decode) ----------------------------------------------


class TokenRejected(StsError):
    """The token is well-formed digits but a meter would reject it."""

    code = "rejected"
    exit_code = 5
    http_status = 422
    result_code = 0  # the meter's token result register value (Conlog numbering)


class CrcError(TokenRejected):
    """Wrong key, wrong meter or mistyped token: the CRC does not match after decryption."""

    code = "crc"
    result_code = 13


class TokenRangeError(TokenRejected):
    """A decoded field is outside the range the meter accepts."""

    code = "range"
    result_code = 7


class FunctionError(TokenRejected):
    """The class/subclass is reserved or not supported by this meter."""

    code = "function"
    result_code = 8


class KeyTypeError(TokenRejected):
    code = "key_type"
    result_code = 5


class MfrCodeError(TokenRejected):
    code = "mfr_code"
    result_code = 14


class TokenKeyExpired(TokenRejected):
    code = "key_expired"
    result_code = 11


class TokenDdtk(TokenRejected):
    code = "ddtk"
    result_code = 12


def exit_code_for(exc: BaseException) -> int:
    """The CLI's process exit status for an exception (1 for anything unexpected)."""
    return exc.exit_code if isinstance(exc, StsError) else 1


# --- vending server (sts.vending): API codes are upper case, as in the REST error model -----


class VendingError(StsError):
    """A refusal by the vending server; `code` is the stable REST error code."""

    code = "VENDING_ERROR"
    exit_code = 6
    http_status = 400


class UnknownMeter(VendingError):
    code = "UNKNOWN_METER"
    http_status = 404


class UnknownRecord(VendingError):
    """No purchase, receipt, key, vendor, ... with that identifier."""

    code = "UNKNOWN_RECORD"
    http_status = 404


class AmountTooLow(VendingError):
    code = "AMOUNT_TOO_LOW"
    http_status = 422


class AmountTooHigh(VendingError):
    code = "AMOUNT_TOO_HIGH"
    http_status = 422


class DuplicateRequest(VendingError):
    """A request id was reused with a different body."""

    code = "DUPLICATE_REQUEST"
    http_status = 409


class MeterBlocked(VendingError):
    code = "METER_BLOCKED"
    http_status = 409


class VendKeyExpired(VendingError):
    """The vending key is past its issued-until date, or the TID range is exhausted."""

    code = "KEY_EXPIRED"
    http_status = 409


class KeyCreditLimit(VendingError):
    code = "KEY_CREDIT_LIMIT"
    http_status = 409


class NotAuthenticated(VendingError):
    code = "NOT_AUTHENTICATED"
    http_status = 401


class NotAuthorised(VendingError):
    code = "NOT_AUTHORISED"
    http_status = 403


class InsufficientFloat(VendingError):
    code = "INSUFFICIENT_FLOAT"
    http_status = 409


class RateLimited(VendingError):
    code = "RATE_LIMITED"
    http_status = 429


class ApprovalNeeded(VendingError):
    """A float top-up above the utility's approval amount asked to take effect at once: it
    must be requested and approved by a second operator."""

    code = "APPROVAL_NEEDED"
    http_status = 409


class ReversalNotAllowed(VendingError):
    code = "REVERSAL_NOT_ALLOWED"
    http_status = 409


class AlreadyExists(VendingError):
    code = "ALREADY_EXISTS"
    http_status = 409


class ShiftState(VendingError):
    """A shift asked for in the wrong state: opening a second one, closing none."""

    code = "SHIFT_STATE"
    http_status = 409


class Unavailable(VendingError):
    code = "UNAVAILABLE"
    http_status = 503


class DatabaseBusy(Unavailable):
    """PostgreSQL gave up a transaction to another (a deadlock, a serialization failure, a
    lock not granted in time, e.g. beside a migration): it was rolled back whole, so the same
    request can be sent again.  The hot-path use cases redo it themselves a few times first.
    Same code as SQLite's busy database: callers treat both alike."""


class SecurityModuleUnavailable(Unavailable):
    """The security module holding the vending keys cannot be reached or refuses to log in
    (absent, unplugged, wrong PIN): nothing is issued, nothing is stored; retry when it is back."""

    code = "SECURITY_MODULE_UNAVAILABLE"
    http_status = 503


class NoFreeUnitsDue(VendingError):
    """A free-units claim when this month's free units were already issued (or none exist)."""

    code = "NO_FREE_UNITS_DUE"
    http_status = 409


class RequestNotSupported(VendingError):
    """A request form this server does not offer (e.g. third-party payment collection)."""

    code = "NOT_SUPPORTED"
    http_status = 422


class PurchaseReversed(VendingError):
    """A purchase whose id a reversal advice already named (the advice came first)."""

    code = "PURCHASE_REVERSED"
    http_status = 409


class AdviceConflict(VendingError):
    """An advice that contradicts an earlier one (confirmation of a reversed sale, ...)."""

    code = "ADVICE_CONFLICT"
    http_status = 409


class NoKeyChangeDue(VendingError):
    """Key change tokens asked for a meter that already holds the current key."""

    code = "NO_KEY_CHANGE_DUE"
    http_status = 409


class OutcomeUnknown(VendingError):
    """The request is still running (or its fate is not yet known): repeat it."""

    code = "OUTCOME_UNKNOWN"
    http_status = 504


class PaymentRefused(VendingError):
    """A mobile-money callback from a network not configured as the provider's, or carrying
    the wrong shortcode: nothing is recorded."""

    code = "CALLBACK_REFUSED"
    http_status = 403


class PaymentMismatch(VendingError):
    """A provider's callback does not match the request we made (amount, currency, phone)."""

    code = "PAYMENT_MISMATCH"
    http_status = 409


class PaymentState(VendingError):
    """A payment cannot move from its state that way (e.g. refunding a sold payment)."""

    code = "PAYMENT_STATE"
    http_status = 409


class ProviderError(VendingError):
    """The mobile-money provider could not be reached or refused our request."""

    code = "PROVIDER_ERROR"
    http_status = 502

# --- virtual meter (sts.meter) -----------------------------------------------------------


class MeterStateError(StsError):
    """A meter state file is missing, unreadable, corrupt or of an unknown format."""

    code = "meter_state"
    exit_code = 3
    http_status = 500


class MeterTimeError(InputError):
    """The simulated time of an action is earlier than the meter's last recorded time."""

    code = "time_backwards"
