"""XMLVend faults: every refusal of the service mapped once onto its fault type (digest §7).

A use case refuses with an `sts.errors` exception; `classify` names the XMLVend fault type it
becomes, with the human text (`desc`, also the SOAP faultstring and the operator message) and,
for Hexing-profile clients, a `faultCode` (Hexing's own codes where a Hexing client acts on
one, such as `VD.17020008` "busy: repeat"; otherwise `STS.<our code>`).  The face raises
`XMLVendFault` itself for what only XMLVend knows (schema, unsupported use case, advices).
The schema has no MinVendAmtEx / MaxVendAmtEx: amount limits are a `BusinessRuleEx` with the
limit in the text, as Hexing and Conlog servers answer them.
"""

from __future__ import annotations

from sts import errors as e
from sts.vending import observe
from sts.vending.access.vend_clients import ClientAuthError, ClientCertificateError

BUSY_CODE = "VD.17020008"  # Hexing: "system busy processing the order"; its clients repeat


class XMLVendFault(Exception):
    """A fault to answer: its xsi:type (a type of the base schema), text and code."""

    def __init__(self, fault_type: str, desc: str, *, code: str | None = None,
                 client: bool = False, retryable: bool = False) -> None:
        super().__init__(desc)
        self.fault_type = fault_type
        self.desc = desc
        self.code = code or f"STS.{fault_type}"
        self.client = client  # the request's own fault (SOAP Client/Sender)
        self.retryable = retryable  # nothing was decided: the same request may be repeated


def schema_fault(element: str, message: str) -> XMLVendFault:
    """A request that does not conform to the schema, naming the element."""
    return XMLVendFault("XMLVendSchemaEx", f"{element}: {message}"[:500],
                        code="STS.SCHEMA", client=True)


def unsupported(what: str) -> XMLVendFault:
    return XMLVendFault("UseCaseSupportEx", f"{what} is not supported by this server",
                        code="STS.NOT_SUPPORTED", client=True)


def busy(message: str) -> XMLVendFault:
    return XMLVendFault("SystemEx", message, code=BUSY_CODE, retryable=True)


# service code -> (fault type, Hexing faultCode or None for STS.<code>)
BY_CODE: dict[str, tuple[str, str | None]] = {
    "UNKNOWN_METER": ("UnknownMeterEx", "VD.01010004"),
    "INVALID_METER_NUMBER": ("MSNOCheckDigitEx", None),
    "invalid_meter_number": ("MSNOCheckDigitEx", None),
    "invalid_pan": ("MSNOCheckDigitEx", None),
    "invalid_drn": ("MSNOCheckDigitEx", None),
    "METER_BLOCKED": ("BlockedMeterEx", None),
    "INSUFFICIENT_FLOAT": ("VendorCreditEx", "VD.17020006"),
    "AMOUNT_TOO_LOW": ("BusinessRuleEx", "STS.MinVendAmtEx"),
    "AMOUNT_TOO_HIGH": ("BusinessRuleEx", "STS.MaxVendAmtEx"),
    "amount_out_of_range": ("BusinessRuleEx", "STS.MaxVendAmtEx"),
    "KEY_EXPIRED": ("LatestKRNEx", None),
    "key_expired": ("LatestKRNEx", None),
    "tid_out_of_range": ("LatestKRNEx", None),
    "ddtk": ("STSDataEx", None),
    "invalid_key": ("STSDataEx", None),
    "KEY_CREDIT_LIMIT": ("BusinessRuleEx", None),
    "NO_FREE_UNITS_DUE": ("FBEEx", None),
    "NO_KEY_CHANGE_DUE": ("UpdateMtrKeySameEx", None),
    "ADVICE_CONFLICT": ("ConfirmationEx", None),
    "REVERSAL_NOT_ALLOWED": ("ReversalEx", None),
    "DUPLICATE_REQUEST": ("BusinessRuleEx", "STS.DuplicateMsgID"),
    "NOT_SUPPORTED": ("UseCaseSupportEx", None),
    "not_supported": ("UseCaseSupportEx", None),
    "token_format": ("VerifyTokenEx", None),
    "UNKNOWN_RECORD": ("BusinessRuleEx", None),
    "ALREADY_EXISTS": ("BusinessRuleEx", None),
}
RETRYABLE = ("UNAVAILABLE", "SECURITY_MODULE_UNAVAILABLE", "OUTCOME_UNKNOWN", "RATE_LIMITED")


def classify(exc: BaseException) -> XMLVendFault:
    """The fault for any exception (an unexpected one is a SystemEx that says nothing more)."""
    fault = _classify(exc)
    observe.note_error(exc.code if isinstance(exc, e.StsError) else fault.fault_type)
    return fault


def _classify(exc: BaseException) -> XMLVendFault:
    if isinstance(exc, XMLVendFault):
        return exc
    if isinstance(exc, ClientCertificateError):
        return XMLVendFault("ClientIDSSLEx", exc.message)
    if isinstance(exc, ClientAuthError):
        return XMLVendFault("ClientIDAuthorisationEx", exc.message, code="VD.010032")
    if isinstance(exc, e.NotAuthenticated):
        return XMLVendFault("ClientIDAuthorisationEx", exc.message, code="VD.010032")
    if isinstance(exc, e.NotAuthorised):
        kind = "SGCAuthorisationEx" if exc.field == "meter" else "RequestAuthorisationEx"
        return XMLVendFault(kind, exc.message)
    if isinstance(exc, e.StsError):
        if exc.code in RETRYABLE:
            return busy(f"{exc.message} (repeat the request)")
        if exc.code in BY_CODE:
            kind, code = BY_CODE[exc.code]
            return XMLVendFault(kind, exc.message, code=code or f"STS.{exc.code}")
        if isinstance(exc, e.TokenRejected):
            return XMLVendFault("STSDataEx", exc.message, code=f"STS.{exc.code}")
        if isinstance(exc, e.InvalidAmount):
            return schema_fault("purchaseValue/amt@value", exc.message)
        if isinstance(exc, e.InputError):
            return XMLVendFault("BusinessRuleEx", exc.message, code=f"STS.{exc.code}")
        if exc.http_status < 500:
            return XMLVendFault("BusinessRuleEx", exc.message, code=f"STS.{exc.code}")
    return XMLVendFault("SystemEx", "system error: the request was not applied",
                        code="STS.SYSTEM_ERROR")


# what the customer is told, per fault type (the operator message is the description)
CUSTOMER_TEXT = {
    "UnknownMeterEx": "Meter not found. Check the meter number.",
    "MSNOCheckDigitEx": "The meter number is not valid. Check the number on the meter.",
    "BlockedMeterEx": "This meter is blocked. Contact the utility.",
    "VendorCreditEx": "The vendor cannot sell now. Try again later.",
    "SGCAuthorisationEx": "This vendor cannot sell to this meter.",
    "FBEEx": "No free units are due for this meter.",
    "LatestKRNEx": "The meter needs a key change. Contact the utility.",
    "SystemEx": "The vending server is busy. Try again.",
}


def customer_text(fault_type: str) -> str:
    return CUSTOMER_TEXT.get(fault_type, "The purchase could not be completed.")
