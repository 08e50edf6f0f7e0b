"""The service-interface-base models the Prepaid Utility interface builds on: the transaction
envelope, advices, parties, amounts, slips, tenders, payment methods and customers.

Validation follows the interface's Bean Validation semantics (digest §1.1): required means
present and not null, a pattern must match the whole string, lengths count characters, and an
absent optional value skips its checks.  Unknown fields are ignored (Electrum keeps adding
optional ones).  Serialise with `dump()`: aliases, no nulls, decimals as JSON numbers.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

# --- scalar rules ----------------------------------------------------------------------------

_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _date_time(value: Any) -> Any:
    """An RFC 3339 §5.6 date-time, kept as the very string received (it is echoed)."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2013-06-07T10:11:59.000Z")
    if not _DATE_TIME.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time, e.g. 2013-06-07T10:11:59.000Z")
    text = value.upper().replace("Z", "+00:00")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:  # datetime keeps microseconds only
        text = text.replace(frac.group(0), "." + frac.group(1)[:6])
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not a real calendar date-time") from None
    return value


def _minor_units(value: Any) -> Any:
    """A JSON integer, or a string of ASCII digits (Jackson's lenient binding, digest §7)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer number of minor units")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError("must be an integer number of minor units (a number or a string of digits)")


def _decimal_out(value: Decimal) -> int | float:
    """Java BigDecimal goes out as a JSON number, never a string."""
    return int(value) if value == value.to_integral_value() else float(value)


def pattern(regex: str) -> str:
    """A Bean Validation @Pattern: the whole string must match."""
    return rf"^(?:{regex})$"


# the JSON schemas say what goes over the wire (the same for requests and responses)
DateTime = Annotated[str, BeforeValidator(_date_time),
                     WithJsonSchema({"type": "string", "format": "date-time"})]
Int64 = Annotated[int, BeforeValidator(_minor_units), Field(ge=-(2**63), le=2**63 - 1),
                  WithJsonSchema({"type": "integer", "format": "int64"})]
Number = Annotated[Decimal, PlainSerializer(_decimal_out, return_type=int | float, when_used="json"),
                   Field(allow_inf_nan=False), WithJsonSchema({"type": "number"})]


def Pattern(regex: str) -> Any:
    return StringConstraints(pattern=pattern(regex))


class Model(BaseModel):
    """Base of every interface model."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, use_enum_values=True,
                              validate_default=False)

    def dump(self) -> dict[str, Any]:
        """The JSON form: field names as on the wire, nulls omitted (Jackson NON_NULL)."""
        out: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        return out


# --- enums -----------------------------------------------------------------------------------


class LedgerIndicator(StrEnum):
    DEBIT = "DEBIT"
    CREDIT = "CREDIT"


class TenderType(StrEnum):
    CASH = "CASH"
    CHEQUE = "CHEQUE"
    CREDIT_CARD = "CREDIT_CARD"
    DEBIT_CARD = "DEBIT_CARD"
    WALLET = "WALLET"
    ROUNDING = "ROUNDING"
    GIFT_CARD = "GIFT_CARD"
    LOYALTY_CARD = "LOYALTY_CARD"
    OTHER = "OTHER"


TenderAccountType = Literal["DEFAULT", "SAVINGS", "CHEQUE", "CREDIT", "UNIVERSAL",
                            "ELECTRONIC_PURSE", "STORED_VALUE"]
AccountType = Literal["DEFAULT", "SAVINGS", "CHEQUE", "CREDIT", "UNIVERSAL", "ELECTRONIC_PURSE",
                      "GIFT_CARD", "STORED_VALUE"]
TranType = Literal[
    "GOODS_AND_SERVICES", "CASH_WITHDRAWAL", "DEBIT_ADJUSTMENT",
    "GOODS_AND_SERVICES_WITH_CASH_BACK", "NON_CASH", "RETURNS", "DEPOSIT", "CREDIT_ADJUSTMENT",
    "GENERAL_CREDIT", "AVAILABLE_FUNDS_INQUIRY", "BALANCE_INQUIRY", "GENERAL_INQUIRY",
    "CARD_VERIFICATION_INQUIRY", "CARDHOLDER_ACCOUNTS_TRANSFER", "GENERAL_TRANSFER",
    "PAYMENT_FROM_ACCOUNT", "GENERAL_PAYMENT", "PAYMENT_TO_ACCOUNT",
    "PAYMENT_FROM_ACCOUNT_TO_ACCOUNT", "PLACE_HOLD_ON_CARD", "GENERAL_ADMIN", "CHANGE_PIN",
    "CARD_HOLDER_INQUIRY", "POINTS_INQUIRY",
]
ReversalReason = Literal["TIMEOUT", "CANCELLED", "RESPONSE_NOT_FINAL"]
ProxyType = Literal["MSISDN", "EMAIL", "UNKNOWN"]
PinBlockFormat = Literal["ISO_9564_FORMAT_0", "ISO_9564_FORMAT_1", "ISO_9564_FORMAT_3"]
PanEntryMode = Literal["UNKNOWN", "MANUAL", "MAGSTRIPE_NO_CVV", "BARCODE", "OCR", "ICC_CVV",
                       "CONTACTLESS_ICC", "MAGSTRIPE_CVV", "CONTACTLESS_MAGSTRIPE", "ICC_NO_CVV",
                       "ORIG_MODE", "FALLBACK"]
PinEntryCapability = Literal["UNKNOWN", "CAN_ACCEPT", "CANNOT_ACCEPT"]
PosConditionCode = Literal[
    "NORMAL_PRESENTMENT", "CUSTOMER_NOT_PRESENT", "CUSTOMER_PRESENT_AND_CARD_NOT_PRESENT",
    "CUSTOMER_IDENTITY_VERIFIED", "PUBLIC_UTILITY_TERMINAL", "CUSTOMER_TERMINAL",
    "MANUAL_REVERSAL", "UNATTENDED_TERMINAL_AND_CARD_CAN_BE_RETAINED",
    "UNATTENDED_TERMINAL_AND_CARD_CANNOT_BE_RETAINED",
]


# --- parties ---------------------------------------------------------------------------------


class Institution(Model):
    id: str
    name: Annotated[str, Field(max_length=40)]


class MerchantName(Model):
    name: Annotated[str, Field(max_length=23)]
    city: Annotated[str, Field(max_length=13)]
    region: Annotated[str, Field(max_length=2)]
    country: Annotated[str, Field(max_length=2)]


class Merchant(Model):
    merchant_type: Annotated[str, Pattern("[0-9]{4}")] = Field(alias="merchantType")
    merchant_id: Annotated[str, Field(min_length=15, max_length=15)] = Field(alias="merchantId")
    merchant_name: MerchantName = Field(alias="merchantName")


class Originator(Model):
    institution: Institution
    terminal_id: Annotated[str, Field(min_length=8, max_length=8)] = Field(alias="terminalId")
    merchant: Merchant
    operator_id: Annotated[str | None, Field(max_length=30)] = Field(None, alias="operatorId")
    channel_id: Annotated[str | None, Field(max_length=50)] = Field(None, alias="channelId")


class ThirdPartyIdentifier(Model):
    institution_id: str = Field(alias="institutionId")
    transaction_identifier: str | None = Field(None, alias="transactionIdentifier")


# --- amounts ---------------------------------------------------------------------------------


class LedgerAmount(Model):
    amount: Int64
    currency: Annotated[str, Pattern("[0-9]{3}")]
    ledger_indicator: LedgerIndicator | None = Field(None, alias="ledgerIndicator")


class Amounts(Model):
    request_amount: LedgerAmount | None = Field(None, alias="requestAmount")
    approved_amount: LedgerAmount | None = Field(None, alias="approvedAmount")
    fee_amount: LedgerAmount | None = Field(None, alias="feeAmount")
    balance_amount: LedgerAmount | None = Field(None, alias="balanceAmount")
    additional_amounts: dict[str, LedgerAmount] | None = Field(None, alias="additionalAmounts")


# --- slips -----------------------------------------------------------------------------------


class Barcode(Model):
    data: str
    encoding: str | None = None


class SlipLine(Model):
    text: str
    barcode: Barcode | None = None
    font_width_scale_factor: Number | None = Field(None, alias="fontWidthScaleFactor")
    font_height_scale_factor: Number | None = Field(None, alias="fontHeightScaleFactor")
    line: bool | None = None
    cut: bool | None = None


class SlipData(Model):
    message_lines: list[SlipLine] | None = Field(None, alias="messageLines")
    slip_width: int | None = Field(None, alias="slipWidth")
    issuer_reference: Annotated[str | None, Pattern("[A-Z0-9]{1,40}")] = Field(
        None, alias="issuerReference")


# --- tenders and payment methods -------------------------------------------------------------


class Tender(Model):
    tender_type: TenderType = Field(alias="tenderType")
    amount: LedgerAmount
    account_type: TenderAccountType | None = Field(None, alias="accountType")
    card_number: Annotated[str | None, Pattern("[0-9]{6}[0-9*]{0,13}")] = Field(
        None, alias="cardNumber")
    reference: Annotated[str | None, Field(max_length=40)] = None


class EncryptionParameters(Model):
    pin_block_format: PinBlockFormat | None = Field(None, alias="pinBlockFormat")
    account_number: Annotated[str, Pattern("[0-9]{12}")] = Field(alias="accountNumber")
    key_index: int | None = Field(None, alias="keyIndex")


class HashedPinParameters(Model):
    name: Annotated[str, Field(max_length=20)]


class PinClear(Model):
    type: Literal["CLEAR_PIN"]
    pin: Annotated[str, Pattern(".{0,20}")]


class PinEncrypted(Model):
    type: Literal["ENCRYPTED_PIN"]
    pin_block: Annotated[str, Pattern("[a-fA-F0-9]{16}")] = Field(alias="pinBlock")
    encryption_parameters: EncryptionParameters | None = Field(None, alias="encryptionParameters")


class PinHashed(Model):
    type: Literal["HASHED_PIN"]
    hash: Annotated[str, Pattern("[0-9,A-F]{1,512}")]
    hashed_pin_parameters: HashedPinParameters | None = Field(None, alias="hashedPinParameters")


Pin = Annotated[PinClear | PinEncrypted | PinHashed, Field(discriminator="type")]


class EncryptedPin(Model):
    pin_block: Annotated[str, Pattern("[a-fA-F0-9]{16}")] = Field(alias="pinBlock")
    encryption_parameters: EncryptionParameters | None = Field(None, alias="encryptionParameters")


class PosEntryMode(Model):
    pan_entry_mode: PanEntryMode = Field(alias="panEntryMode")
    pin_entry_capability: PinEntryCapability = Field(alias="pinEntryCapability")


class PosInfo(Model):
    entry_mode: PosEntryMode | None = Field(None, alias="entryMode")
    pos_condition_code: PosConditionCode | None = Field(None, alias="posConditionCode")


class PaymentMethodBase(Model):
    name: str | None = None
    amount: LedgerAmount | None = None
    issuer: Institution | None = None
    pin: Pin | None = None
    proxy: Annotated[str | None, Field(max_length=40)] = None
    proxy_type: ProxyType | None = Field(None, alias="proxyType")


class AccountPayment(PaymentMethodBase):
    type: Literal["ACCOUNT"]
    src_account_id: str | None = Field(None, alias="srcAccountId")
    src_customer_id: str | None = Field(None, alias="srcCustomerId")
    dest_account_id: str | None = Field(None, alias="destAccountId")
    dest_customer_id: str | None = Field(None, alias="destCustomerId")


class An32TokenPayment(PaymentMethodBase):
    type: Literal["AN_32_TOKEN"]
    token: Annotated[str, Pattern("[a-zA-Z0-9]{32}")]


class LoyaltyCardPayment(PaymentMethodBase):
    type: Literal["LOYALTY_CARD"]
    card_number: Annotated[str, Pattern("[0-9]{16}")] = Field(alias="cardNumber")


class CardPayment(PaymentMethodBase):
    type: Literal["CARD"]
    pan: Annotated[str, Pattern("[0-9]{1,19}")]
    expiry_date: Annotated[str | None, Pattern("[0-9]{4}")] = Field(None, alias="expiryDate")
    pos_info: PosInfo | None = Field(None, alias="posInfo")
    encrypted_pin: EncryptedPin | None = Field(None, alias="encryptedPin")


class RewardPayment(PaymentMethodBase):
    type: Literal["REWARD"]
    reward_code: Annotated[str, Field(max_length=40)] = Field(alias="rewardCode")


class WalletPocket(Model):
    pocket_name: str = Field(alias="pocketName")
    pocket_id: str | None = Field(None, alias="pocketId")


class WalletPayment(PaymentMethodBase):
    type: Literal["WALLET"]
    wallet_id: str = Field(alias="walletId")
    wallet_pocket: WalletPocket | None = Field(None, alias="walletPocket")


class QrPayment(PaymentMethodBase):
    type: Literal["QR"]
    tran_id: str = Field(alias="tranId")
    partner_payment_token: str | None = Field(None, alias="partnerPaymentToken")


PaymentMethod = Annotated[
    AccountPayment | An32TokenPayment | LoyaltyCardPayment | CardPayment | RewardPayment
    | WalletPayment | QrPayment,
    Field(discriminator="type"),
]


# --- customers -------------------------------------------------------------------------------

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL = rf"{_ATOM}(\.{_ATOM})*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*"


class Address(Model):
    address_line1: Annotated[str | None, Pattern(".{1,100}")] = Field(None, alias="addressLine1")
    address_line2: Annotated[str | None, Pattern(".{1,100}")] = Field(None, alias="addressLine2")
    city: Annotated[str | None, Pattern(".{1,30}")] = None
    region: Annotated[str | None, Pattern("[A-Z]{2}")] = None
    country: Annotated[str | None, Pattern("[A-Z]{2}")] = None
    postal_code: Annotated[str | None, Pattern("[A-Za-z0-9 -]{1,20}")] = Field(
        None, alias="postalCode")


class Customer(Model):
    first_name: Annotated[str | None, Field(max_length=40)] = Field(None, alias="firstName")
    last_name: Annotated[str | None, Field(max_length=40)] = Field(None, alias="lastName")
    address: Annotated[str | None, Field(max_length=80)] = None
    date_of_birth: DateTime | None = Field(None, alias="dateOfBirth")
    status: str | None = None
    msisdn: Annotated[str | None, Pattern(r"\+?[1-9][0-9]{0,14}")] = None
    email_address: Annotated[str | None, Pattern(_EMAIL),
                             WithJsonSchema({"type": "string", "format": "email"})] = Field(
        None, alias="emailAddress")
    address_details: Address | None = Field(None, alias="addressDetails")
    profile_id: str | None = Field(None, alias="profileId")


# --- the envelope ----------------------------------------------------------------------------

ENVELOPE_FIELDS = ("id", "time", "originator", "client", "settlementEntity", "receiver",
                   "thirdPartyIdentifiers", "basketRef", "tranType", "srcAccType",
                   "destAccType", "stan", "rrn")


class Transaction(Model):
    """Base of every request and response (ops 1, 2, 3, 6, 7, 8, 10)."""

    id: str
    time: DateTime
    originator: Originator
    client: Institution
    settlement_entity: Institution | None = Field(None, alias="settlementEntity")
    receiver: Institution | None = None
    third_party_identifiers: list[ThirdPartyIdentifier] = Field(alias="thirdPartyIdentifiers")
    slip_data: SlipData | None = Field(None, alias="slipData")
    basket_ref: str | None = Field(None, alias="basketRef")
    tran_type: TranType | None = Field(None, alias="tranType")
    src_acc_type: AccountType | None = Field(None, alias="srcAccType")
    dest_acc_type: AccountType | None = Field(None, alias="destAccType")
    stan: str | None = None
    rrn: str | None = None


class BasicAdvice(Model):
    """Base of confirmations, reversals and key change confirmations (ops 4, 5, 9)."""

    id: str
    request_id: str = Field(alias="requestId")
    time: DateTime
    third_party_identifiers: list[ThirdPartyIdentifier] = Field(alias="thirdPartyIdentifiers")
    stan: str | None = None
    rrn: str | None = None
    amounts: Amounts | None = None


class TenderAdvice(BasicAdvice):
    tenders: list[Tender] | None = None


class ConfirmationAdvice(TenderAdvice):
    pass


class BasicReversal(BasicAdvice):
    reversal_reason: ReversalReason = Field(alias="reversalReason")


class ReversalAdvice(BasicReversal):
    pass


class KeyChangeConfirmation(BasicAdvice):
    pass


class BasicAdviceResponse(BasicAdvice):
    pass
