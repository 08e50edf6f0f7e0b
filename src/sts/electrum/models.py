"""The Prepaid Utility Service Interface v3 models (meters, tokens, requests, responses, errors),
written from the digest (`electrum-psi.md` §3), on the base models of `sts.electrum.base`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from sts.electrum.base import (
    Amounts,
    BasicAdvice,
    BasicAdviceResponse,
    ConfirmationAdvice,
    Customer,
    KeyChangeConfirmation,
    LedgerAmount,
    Model,
    Number,
    Pattern,
    PaymentMethod,
    ReversalAdvice,
    SlipData,
    Tender,
    Transaction,
)

__all__ = [
    "BasicAdvice", "BasicAdviceResponse", "ConfirmationAdvice", "Customer",
    "KeyChangeConfirmation", "LedgerAmount", "ReversalAdvice", "SlipData", "Tender",
]


class ErrorType(StrEnum):
    DUPLICATE_RECORD = "DUPLICATE_RECORD"
    FORMAT_ERROR = "FORMAT_ERROR"
    FUNCTION_NOT_SUPPORTED = "FUNCTION_NOT_SUPPORTED"
    GENERAL_ERROR = "GENERAL_ERROR"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    ROUTING_ERROR = "ROUTING_ERROR"
    TRANSACTION_NOT_SUPPORTED = "TRANSACTION_NOT_SUPPORTED"
    UNABLE_TO_LOCATE_RECORD = "UNABLE_TO_LOCATE_RECORD"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UNKNOWN_METER_ID = "UNKNOWN_METER_ID"
    TRANSACTION_DECLINED = "TRANSACTION_DECLINED"
    INVALID_MERCHANT = "INVALID_MERCHANT"
    INVALID_AN32_TOKEN = "INVALID_AN32_TOKEN"
    DO_NOT_HONOR = "DO_NOT_HONOR"
    INVALID_MSISDN = "INVALID_MSISDN"
    INVALID_LOYALTY_CARD = "INVALID_LOYALTY_CARD"
    UTILITY_INVALID = "UTILITY_INVALID"
    SYSTEM_MALFUNCTION = "SYSTEM_MALFUNCTION"
    METER_KEY_INVALID = "METER_KEY_INVALID"
    AMOUNT_TOO_LOW = "AMOUNT_TOO_LOW"
    AMOUNT_TOO_HIGH = "AMOUNT_TOO_HIGH"
    NO_FREE_UNITS_DUE = "NO_FREE_UNITS_DUE"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    METER_ID_BLOCKED = "METER_ID_BLOCKED"
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"


class RequestType(StrEnum):
    METER_LOOKUP_REQUEST = "METER_LOOKUP_REQUEST"
    TOKEN_PURCHASE_REQUEST = "TOKEN_PURCHASE_REQUEST"
    TOKEN_PURCHASE_RETRY_REQUEST = "TOKEN_PURCHASE_RETRY_REQUEST"
    TOKEN_REPRINT_REQUEST = "TOKEN_REPRINT_REQUEST"
    FAULT_REPORT_REQUEST = "FAULT_REPORT_REQUEST"
    KEY_CHANGE_TOKEN_REQUEST = "KEY_CHANGE_TOKEN_REQUEST"
    CONFIRMATION_ADVICE = "CONFIRMATION_ADVICE"
    REVERSAL_ADVICE = "REVERSAL_ADVICE"
    NOTIFY_TOKEN_PURCHASE = "NOTIFY_TOKEN_PURCHASE"
    TOKEN_PURCHASE_TRIAL_REQUEST = "TOKEN_PURCHASE_TRIAL_REQUEST"


class TokenType(StrEnum):
    STD = "STD"
    BSST = "BSST"
    REFUND = "REFUND"
    KC = "KC"
    PWRLMT = "PWRLMT"


# FaultType: Jackson writes the constant name (no @JsonValue), live clients send the display
# string; both are accepted and the value is echoed as received (digest §7 item 8).
FAULT_TYPES: dict[str, str] = {
    "SERIOUS_BOX_DAMAGE": "SeriousBoxDamage",
    "FIRE_WATER_DAMAGE": "FireWaterDamage",
    "METER_DEAD": "MeterDead",
    "KEEPS_TRIPPING": "KeepsTripping",
    "NO_TRIP": "NoTrip",
    "DISPLAY_LIGHTS_BUTTONS": "DisplayLightsButtons",
    "NETWORK_FAULT_REPORT": "NetworkFaultReport",
    "INCORRECT_SGC": "IncorrectSGC",
    "INCORRECT_TI": "IncorrectTI",
    "CONVERTED_FRM_CONVENTIONAL": "ConvertedFrmConventional",
    "METER_CHANGED_OUT": "MeterChangedOut",
    "NEW_INSTALLATION": "NewInstallation",
}
FAULT_TYPE_VALUES = (*FAULT_TYPES, *FAULT_TYPES.values())
FaultTypeName = Literal[
    "SERIOUS_BOX_DAMAGE", "FIRE_WATER_DAMAGE", "METER_DEAD", "KEEPS_TRIPPING", "NO_TRIP",
    "DISPLAY_LIGHTS_BUTTONS", "NETWORK_FAULT_REPORT", "INCORRECT_SGC", "INCORRECT_TI",
    "CONVERTED_FRM_CONVENTIONAL", "METER_CHANGED_OUT", "NEW_INSTALLATION",
    "SeriousBoxDamage", "FireWaterDamage", "MeterDead", "KeepsTripping", "NoTrip",
    "DisplayLightsButtons", "NetworkFaultReport", "IncorrectSGC", "IncorrectTI",
    "ConvertedFrmConventional", "MeterChangedOut", "NewInstallation",
]


def fault_constant(value: str) -> str:
    """The constant name of a fault type given in either spelling."""
    if value in FAULT_TYPES:
        return value
    return next(k for k, v in FAULT_TYPES.items() if v == value)


# --- meters, utilities, tokens ---------------------------------------------------------------


class KeyChangeData(Model):
    new_supply_group_code: Annotated[str | None, Pattern("[0-9]{6}")] = Field(
        None, alias="newSupplyGroupCode")
    new_key_revision_number: Annotated[str | None, Pattern("[0-9]{1}")] = Field(
        None, alias="newKeyRevisionNumber")
    new_tariff_index: Annotated[str | None, Pattern("[0-9]{2}")] = Field(
        None, alias="newTariffIndex")


class Meter(Model):
    meter_id: Annotated[str, Pattern("[a-zA-Z0-9]{0,20}")] = Field(alias="meterId")
    track2_data: Annotated[str | None, Pattern("[a-zA-Z0-9=]{34}")] = Field(
        None, alias="track2Data")
    service_type: Annotated[str | None, Pattern("[a-zA-Z0-9]{0,12}")] = Field(
        None, alias="serviceType")
    supply_group_code: Annotated[str | None, Pattern("[0-9]{6}")] = Field(
        None, alias="supplyGroupCode")
    key_revision_num: Annotated[str | None, Pattern("[0-9]{1}")] = Field(
        None, alias="keyRevisionNum")
    tariff_index: Annotated[str | None, Pattern("[0-9]{2}")] = Field(None, alias="tariffIndex")
    token_tech_code: Annotated[str | None, Pattern("[0-9]{2}")] = Field(
        None, alias="tokenTechCode")
    algorithm_code: Annotated[str | None, Pattern("[0-9]{2}")] = Field(
        None, alias="algorithmCode")
    key_change_data: KeyChangeData | None = Field(None, alias="keyChangeData")


class Utility(Model):
    name: Annotated[str | None, Field(max_length=40)] = None
    address: Annotated[str | None, Field(max_length=80)] = None
    vat_reg_num: Annotated[str | None, Field(max_length=10)] = Field(None, alias="vatRegNum")
    client_id: Annotated[str | None, Field(max_length=20)] = Field(None, alias="clientId")
    message: Annotated[str | None, Field(max_length=80)] = None


class TaxableAmount(LedgerAmount):
    tax: Annotated[int | None, Field(ge=-(2**63), le=2**63 - 1)] = None
    tax_type: Annotated[str | None, Field(max_length=10)] = Field(None, alias="taxType")
    tax_rate: Number | None = Field(None, alias="taxRate")


class TariffBlock(Model):
    units: Number
    rate: Number


class Token(Model):
    token_type: TokenType = Field(alias="tokenType")
    units: Number
    amount: TaxableAmount
    receipt_num: str | None = Field(None, alias="receiptNum")
    token: str
    tariff_calc: list[TariffBlock] | None = Field(None, alias="tariffCalc")


class DebtRecoveryCharge(Model):
    amount: TaxableAmount
    description: Annotated[str, Field(max_length=40)]
    balance: LedgerAmount
    receipt_num: Annotated[str | None, Field(max_length=30)] = Field(None, alias="receiptNum")


class ServiceCharge(Model):
    amount: TaxableAmount
    description: Annotated[str, Field(max_length=40)]


# --- requests --------------------------------------------------------------------------------


class MeterLookupRequest(Transaction):
    meter: Meter


class PurchaseRequest(Transaction):
    meter: Meter
    purchase_amount: LedgerAmount = Field(alias="purchaseAmount")
    utility_type: str | None = Field(None, alias="utilityType")
    msisdn: Annotated[str | None, Pattern(r"(\+?[1-9][0-9]{1,14})|(0[0-9]{9})")] = None
    tenders: list[Tender] | None = None
    payment_methods: list[PaymentMethod] | None = Field(None, alias="paymentMethods")


class TokenReprintRequest(Transaction):
    meter: Meter
    original_ref: str | None = Field(None, alias="originalRef")


class KeyChangeTokenRequest(Transaction):
    meter: Meter


class FaultReportRequest(Transaction):
    meter: Meter
    customer: Customer | None = None
    contact_number: Annotated[str, Field(max_length=20)] = Field(alias="contactNumber")
    fault_type: FaultTypeName = Field(alias="faultType")
    fault_description: Annotated[str | None, Field(max_length=160)] = Field(
        None, alias="faultDescription")


# --- responses -------------------------------------------------------------------------------


class MeterLookupResponse(Transaction):
    meter: Meter
    customer: Customer
    utility: Utility
    min_amount: LedgerAmount | None = Field(None, alias="minAmount")
    max_amount: LedgerAmount | None = Field(None, alias="maxAmount")
    arrears_amount: LedgerAmount | None = Field(None, alias="arrearsAmount")
    bsst_due: bool | None = Field(None, alias="bsstDue")


class PurchaseResponse(Transaction):
    meter: Meter
    customer: Customer
    utility: Utility
    utility_type: str | None = Field(None, alias="utilityType")
    tokens: list[Token] | None = None
    debt_recovery_charges: list[DebtRecoveryCharge] | None = Field(
        None, alias="debtRecoveryCharges")
    service_charges: list[ServiceCharge] | None = Field(None, alias="serviceCharges")
    purchase_total: LedgerAmount | None = Field(None, alias="purchaseTotal")
    tax_total: LedgerAmount | None = Field(None, alias="taxTotal")
    amounts: Amounts | None = None
    vat_invoice_number: str | None = Field(None, alias="vatInvoiceNumber")


class KeyChangeTokenResponse(Transaction):
    meter: Meter
    tokens: list[Token] | None = None


class FaultReportResponse(Transaction):
    reference: str
    description: Annotated[str, Field(max_length=160)]


class ErrorDetail(Model):
    error_type: ErrorType = Field(alias="errorType")
    error_message: Annotated[str, Field(max_length=20)] = Field(alias="errorMessage")
    request_type: RequestType = Field(alias="requestType")
    id: str
    original_id: str | None = Field(None, alias="originalId")
    detail_message: object | None = Field(None, alias="detailMessage")

