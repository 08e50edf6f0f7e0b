"""The /v1 API's request and response models: the published contract (OpenAPI at /docs).

Request bodies check shape only: JSON types (strict: a number is not a string, 1 is not
`true`), unknown fields refused, a maximum length on every string, so nothing large reaches
the service or its audit log, and no control character in any string (`Text`, `Note`: the
text rule of `sts.vending.text`), so nothing a database refuses reaches it.  A wrong type or
length of `amount` or `meter` is answered by that field's one rule (INVALID_AMOUNT,
INVALID_METER_NUMBER; `sts.http.errors`).  Every
business rule (amount format and limits, meter number check digits, reason length, request-id
form, ranges) lives in the service, once.

Response models document what the service answers; they allow fields added later (clients
ignore what they do not know).  They are used for documentation and conformance tests, not to
filter answers: a sale's answer is the stored JSON text itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic_core import PydanticCustomError

from sts.codec.amount import AMOUNT_MAX_CHARS
from sts.vending.text import bad_char, describe

# maximum lengths of request strings (docs/vending.md, "API limits")
METER_MAX = 32  # an 18/20-digit PAN or an 11/13-digit meter number, with spaces or dashes
AMOUNT_MAX = AMOUNT_MAX_CHARS  # the amount rule's own limit (sts.codec.amount)
REFERENCE_MAX = 64
PAY_TYPE_MAX = 20
REASON_MAX = 300
RECEIPT_NO_MAX = 10  # receipt numbers are printed with 10 digits
TOKEN_MAX = 40  # 20 digits, grouped with spaces or dashes
TYPE_MAX = 32
REQUEST_ID_MAX = 64
# token delivery (sts.vending.outbox holds the rules: channels, phone and e-mail forms)
CHANNEL_MAX = 8
RECIPIENT_MAX = 254  # an e-mail address (RFC 5321 path limit); a phone number is shorter
LANG_MAX = 8
DELIVER_MAX = 6  # channels per request (sts.vending.outbox.MAX_CHANNELS)
DELIVERY_STATUS_MAX = 10
DELIVERY_ID_MAX = 2**31 - 1  # deliveries.id is a 32-bit integer on PostgreSQL


# --- errors -------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Every error answer of /v1: a stable code, a message for people, the field at fault."""

    code: str = Field(description="stable error code, e.g. UNKNOWN_METER, INVALID_INPUT",
                      examples=["INVALID_INPUT"])
    message: str = Field(description="what is wrong and the rule, for people")
    field: str | None = Field(None, description="the request field at fault (dotted path); "
                              "'body' for the body as a whole, 'authorization' for the key")
    reason: str | None = Field(None, description="TOKEN_REJECTED only: the meter's reason "
                               "(crc, range, function, key_expired, ...)")


# --- requests -----------------------------------------------------------------------------


def _refuse_controls(multiline: bool) -> AfterValidator:
    """The text rule (`sts.vending.text`) as a pydantic check: a control character is a 422
    naming the field before anything reaches the service or the database."""

    def check(value: str) -> str:
        char = bad_char(value, multiline=multiline)
        if char is not None:
            raise PydanticCustomError("control_character", "contains {char}",
                                      {"char": describe(char)})
        return value

    return AfterValidator(check)


# every request string: one line, no control characters; a note may also hold tabs and newlines
Text = Annotated[StrictStr, _refuse_controls(multiline=False)]
Note = Annotated[StrictStr, _refuse_controls(multiline=True)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)


class DeliverItem(Body):
    """One channel a sale's tokens are delivered to."""

    channel: Text = Field(max_length=CHANNEL_MAX, description="sms, email or ami",
                               examples=["sms"])
    to: Text | None = Field(None, max_length=RECIPIENT_MAX,
                                 description="sms: +27... (international form); email: the "
                                 "address; not used for ami (the meter is the addressee)")
    lang: Text | None = Field(None, max_length=LANG_MAX,
                                   description="message language, e.g. en, af-ZA")


DELIVER_DOC = ("token delivery channels (at most 6); an AMI-connected meter always gets ami. "
               "Not part of the request's identity: a repeat answers as stored")


class PurchaseBody(Body):
    meter: Text = Field(max_length=METER_MAX,
                             description="meter number (MeterPAN, or as printed on the meter)",
                             examples=["600727041000000193"])
    amount: Text = Field(max_length=AMOUNT_MAX,
                              description="amount tendered incl. VAT: a plain decimal string",
                              examples=["50.00"])
    reference: Text | None = Field(None, max_length=REFERENCE_MAX,
                                        description="the client's own reference")
    pay_type: Text | None = Field(None, max_length=PAY_TYPE_MAX,
                                       description="cash, card, mobile, ...")
    deliver: list[DeliverItem] | None = Field(None, max_length=DELIVER_MAX,
                                              description=DELIVER_DOC)


class ReversalBody(Body):
    reason: Note = Field(max_length=REASON_MAX,
                              description="why the tokens never reached the customer")


class ReprintBody(Body):
    meter: Text | None = Field(None, max_length=METER_MAX,
                                    description="reprint the meter's last purchase")
    receipt_no: Text | None = Field(None, max_length=RECEIPT_NO_MAX,
                                         description="or the purchase with this receipt number")


class EngineeringBody(Body):
    meter: Text = Field(max_length=METER_MAX)
    type: Text = Field(max_length=TYPE_MAX,
                            description="clear_tamper, clear_credit, power_limit, "
                            "phase_unbalance, key_change or test")
    reason: Note = Field(max_length=REASON_MAX, description="work order or note; required")
    watts: StrictInt | None = Field(None, description="power_limit, phase_unbalance")
    register_: StrictInt | None = Field(None, alias="register",
                                        description="clear_credit: the register to clear")
    control: StrictInt | None = Field(None, description="test: the test control bits")
    to_krn: StrictInt | None = Field(None, description="key_change: the target key revision")
    to_ti: StrictInt | None = Field(None, description="key_change: the target tariff index")
    ro: StrictBool | None = Field(None, description="key_change: rollover (clear TID memory)")
    deliver: list[DeliverItem] | None = Field(None, max_length=DELIVER_MAX,
                                              description="token delivery channels; an "
                                              "AMI-connected meter always gets ami")


class VerifyBody(Body):
    meter: Text = Field(max_length=METER_MAX)
    token: Text = Field(max_length=TOKEN_MAX, description="20 digits; spaces, dashes allowed")


class ResendBody(Body):
    channel: Text = Field(max_length=CHANNEL_MAX, description="sms, email or ami")
    to: Text | None = Field(None, max_length=RECIPIENT_MAX,
                                 description="default: the channel's last recipient for this "
                                 "sale")
    lang: Text | None = Field(None, max_length=LANG_MAX,
                                   description="default: the channel's last language")


# --- responses ----------------------------------------------------------------------------


class Out(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class MeterOut(Out):
    pan: str
    sgc: str
    krn: int
    ti: int
    kt: int
    ea: int
    dkga: int
    base_date: int
    ken: int
    mfr_code: str
    service: str
    status: str


class CustomerOut(Out):
    account_no: str
    name: str
    address: str


class UtilityOut(Out):
    name: str
    address: str
    vat_reg_num: str
    currency: str


class TariffOut(Out):
    name: str
    description: str


class KeyRef(Out):
    sgc: str
    krn: int
    ti: int
    base_date: int


class NewKeyOut(KeyRef):
    rollover: bool


class QuoteOut(Out):
    amount: str
    units: str
    energy_amount: str
    vat: str
    fixed_charge: str
    debt_recovery: str
    debt_balance: str
    free_units: str


class LookupOut(Out):
    meter: MeterOut
    customer: CustomerOut | None
    utility: UtilityOut
    tariff: TariffOut
    min_amount: str
    max_amount: str | None
    arrears: str
    can_vend: bool
    key_change_due: bool
    free_units_due: str
    blocked_reason: str | None = Field(None, description="when the meter is blocked")
    new_key: NewKeyOut | None = Field(None, description="when a key change is due")
    quote: QuoteOut | None = Field(None, description="when an amount was given")


class TokenOut(Out):
    token: str | None = Field(description="20 digits; null in a trial")
    class_: int = Field(alias="class")
    subclass: int
    kind: str = Field(description="KCT, STD, FBE, ENG or TEST")
    description: str
    tid: int | None = Field(None, description="token identifier (minutes since the base date)")
    units: str | None = None
    label: str | None = None


class VendorOut(Out):
    name: str
    address: str


class StepOut(Out):
    units: str
    price: str
    amount: str


class VatOut(Out):
    rate: str
    amount: str


class ChargeOut(Out):
    description: str
    amount: str


class DebtOut(ChargeOut):
    balance: str


class KeyChangeOut(Out):
    from_: KeyRef = Field(alias="from")
    to: KeyRef
    rollover: bool


class ReceiptOut(Out):
    receipt_no: str
    date: str
    trial: bool
    utility: UtilityOut
    vendor: VendorOut | None
    meter: MeterOut
    customer: CustomerOut | None
    tariff: TariffOut
    amount: str
    units: str
    unit: str
    energy_amount: str
    energy_net: str
    steps: list[StepOut]
    vat: VatOut
    charges: list[ChargeOut]
    debt: list[DebtOut]
    free_units: str
    key_change: KeyChangeOut | None
    tokens: list[TokenOut]
    request: dict[str, str] | None = Field(None, description="reference and pay_type, if given")


class SaleOut(Out):
    receipt: ReceiptOut
    tokens: list[TokenOut]
    slip: str = Field(description="the printable receipt")


class DeliveryOut(Out):
    """One delivery job: a channel of a purchase (or engineering issue) and where it stands."""

    id: int
    channel: str = Field(description="sms, email or ami")
    to: str | None = Field(None, description="phone number or e-mail address (not for ami)")
    status: str = Field(description="pending, sent, delivered, accepted, rejected or failed")
    meter_result: dict[str, Any] | None = Field(None, description="ami: the meter's answer "
                                                "(token gateway status and its own result)")
    reason: str | None = Field(None, description="failed: the last error; rejected: why")
    attempts: int
    created_at: str
    updated_at: str
    sent_at: str | None = None
    delivered_at: str | None = None
    done_at: str | None = None
    resend_of: int | None = Field(None, description="the job this one sends again")
    meter: str | None = Field(None, description="listings: the meter's PAN")
    request_id: str | None = Field(None, description="listings: the purchase id")


class DeliveriesOut(Out):
    deliveries: list[DeliveryOut]
    next_after_id: int | None = Field(description="pass as after_id for the next page; null "
                                      "on the last page")


class PurchaseOut(SaleOut):
    purchase_id: str
    status: str | None = Field(None, description="completed or reversed (stored answers)")
    delivery: list[DeliveryOut] | None = Field(None, description="GET: each delivery "
                                               "channel's status")


class TrialOut(SaleOut):
    trial: bool


class ReprintOut(PurchaseOut):
    reprint: bool


class ReversalOut(Out):
    reversal_id: str
    purchase_id: str
    receipt_no: str
    reverses_receipt_no: str
    date: str
    reason: str
    amount: str
    units: str
    meter: str
    cancelled_tokens: list[str]


class EngineeringKeyChange(Out):
    to: KeyRef
    rollover: bool


class EngineeringOut(Out):
    request_id: str
    receipt_no: str
    type: str
    reason: str
    date: str
    meter: MeterOut
    tokens: list[TokenOut]
    key_change: EngineeringKeyChange | None = None


class VerifyError(Out):
    code: str
    reason: str
    message: str


class IssueKey(Out):
    sgc: str
    krn: int
    ti: int


class IssueOut(Out):
    request_id: str
    receipt_no: str
    transaction: str
    kind: str
    position: int
    status: str
    issued_at: str
    key: IssueKey


class VerifyOut(Out):
    meter: str
    token: str
    issued: bool
    decoded: dict[str, Any] | None = Field(description="the token's fields (never key bits)")
    error: VerifyError | None = Field(None, description="why a meter would reject the token")
    issue: IssueOut | None = Field(None, description="when this server issued the token")


class AuditOut(Out):
    ok: bool
    entries: int
    meters: int
    transactions: int
    problems: list[str]


# --- mobile money (/v1/payments) --------------------------------------------------------------

PROVIDER_MAX = 16
PROVIDER_ID_MAX = 64
PAYMENT_STATE_MAX = 10


class PaymentSaleOut(Out):
    """The sale of a payment; its receipt and tokens only for roles that read sales."""

    purchase_id: str
    receipt_no: str | None = None
    state: str | None = Field(None, description="issued, confirmed or reversed")
    receipt: dict[str, Any] | None = None
    tokens: list[dict[str, Any]] | None = None
    delivery: list[DeliveryOut] | None = None


class PaymentOut(Out):
    """A provider transaction: received, sold, exception (with its reason) or refunded."""

    id: int | None = Field(None, description="listings: the payment's number")
    provider: str
    provider_id: str = Field(description="the provider's transaction id (M-Pesa TransID)")
    kind: str = Field(description="c2b (paybill) or stk (a prompt we made)")
    account: str = Field(description="the account reference as the customer typed it")
    meter: str | None = Field(description="the meter's PAN, when the reference names one")
    amount: str
    currency: str
    msisdn: str = Field(description="the payer's number as received (maybe masked)")
    phone: str = Field(description="where the token SMS went")
    payer: str
    paid_at: str | None
    state: str = Field(description="received, sold, exception or refunded")
    reason: str = Field(description="exception: why it could not be sold")
    purchase_id: str | None
    request_id: str | None
    created_at: str | None
    updated_at: str | None
    sale: PaymentSaleOut | None = None


class PaymentsOut(Out):
    payments: list[PaymentOut]
    next_after_id: int | None = Field(description="pass as after_id for the next page; null "
                                      "on the last page")


class SettlementBody(Body):
    action: StrictStr = Field(max_length=8, description="sell (sell it again, e.g. once the "
                              "meter is unblocked) or refund (the money went back)")
    reason: StrictStr = Field(max_length=200, description="why; for a refund its reference")
