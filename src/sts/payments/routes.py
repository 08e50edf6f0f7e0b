"""The routes of the mobile-money face (see the package docstring); `mount(app, service)`."""

# no `from __future__ import annotations`: FastAPI reads the local aliases at runtime

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Form, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from sts.errors import InputError, PaymentRefused
from sts.payments import buy, ussd
from sts.payments.config import MobileMoneySettings, MomoSettings
from sts.payments.momo import Momo
from sts.payments.mpesa import ACCEPTED, Mpesa, rejected
from sts.payments.provider import PromptOutcome, Provider
from sts.vending.access.policy import Caller
from sts.vending.service import VendingService
from sts.vending.usecases.payments import Payment

PREFIX = "/pay"
USSD_PATH = "/ussd"
JsonBody = Annotated[Any, Body()]
MAX_FIELD = 200


def render_pay_error(_request: Request, status: int, body: dict[str, Any]) -> Response:
    """Errors under /pay in the provider's own shape, with our code and field for people."""
    out = {"ResultCode": "C2B00016", "ResultDesc": body.get("message", "refused"),
           "code": body.get("code", "")}
    if body.get("field"):
        out["field"] = body["field"]
    return JSONResponse(out, status_code=status)


def render_ussd_error(_request: Request, status: int, body: dict[str, Any]) -> Response:
    return PlainTextResponse("END Sorry, the service cannot answer now. Please try again.",
                             status_code=status)


class Channel:
    """The face's credential: the configured networks, then the channel vendor's caller
    (resolved once, on the first callback that needs it)."""

    def __init__(self, service: VendingService, settings: MobileMoneySettings | MomoSettings,
                 provider: str = "mpesa") -> None:
        self.service = service
        self.settings = settings
        self.provider = provider
        self._caller: Caller | None = None
        self._lock = threading.Lock()

    def check(self, request: Request) -> Caller:
        host = request.client.host if request.client is not None else None
        if not self.settings.allows(host):
            raise PaymentRefused("callbacks are accepted from the provider's networks only",
                                 field="source")
        return self.caller()

    def caller(self) -> Caller:
        """The channel vendor's caller (the self-service page: customers, from anywhere)."""
        with self._lock:
            if self._caller is None:
                self._caller = self.service.channel_caller(self.settings.vendor,
                                                           self.provider)
            return self._caller


def resolve_prompts(service: VendingService, settings: MobileMoneySettings | MomoSettings,
                    older_than: float, adapter: Provider | None = None) -> list[dict[str, Any]]:
    """Ask the status of every prompt unanswered for `older_than` seconds (a lost callback):
    a cancelled or timed-out one is closed; a paid one is sold when the answer names its
    transaction (MoMo), else it waits for its receipt (M-Pesa: the callback, or the
    statement's `reconcile --sell`)."""
    if adapter is None:
        adapter = Momo(settings) if isinstance(settings, MomoSettings) else Mpesa(settings)
    caller = service.channel_caller(settings.vendor, adapter.name)
    out = []
    for request_id in service.pending_prompts(caller, older_than, adapter.name):
        outcome = adapter.status(request_id)
        if outcome is None:
            out.append({"request_id": request_id, "state": "pending"})
            continue
        out.append(service.prompt_result(adapter.name, request_id, outcome.result_code,
                                         outcome.result_desc, outcome.payment, caller))
    return out


def mount(app: FastAPI, service: VendingService,
          settings: MobileMoneySettings | None = None,
          provider: Mpesa | None = None) -> None:
    """Serve the mobile-money callbacks and USSD on `app` (one call in the app factory)."""
    settings = settings or MobileMoneySettings.from_env()
    mpesa = provider or Mpesa(settings)
    channel = Channel(service, settings)
    momo_settings = MomoSettings.from_env()
    momo = Momo(momo_settings)
    momo_channel = Channel(service, momo_settings, "momo")
    app.state.mobile_money = {"settings": settings, "provider": mpesa, "momo": momo}
    if not hasattr(app.state, "error_renderers"):
        app.state.error_renderers = {}
    app.state.error_renderers[PREFIX + "/"] = render_pay_error
    app.state.error_renderers[USSD_PATH] = render_ussd_error
    router = APIRouter(include_in_schema=False)

    @router.post(PREFIX + "/c2b/validation")
    def validation(request: Request, body: JsonBody) -> dict[str, str]:
        caller = channel.check(request)
        try:
            p = mpesa.parse_callback("c2b", body)
        except InputError as exc:  # Daraja's own codes for the two fields a customer types
            if exc.field == "TransAmount":
                return rejected("amount")
            if exc.field == "BillRefNumber":
                return rejected("account")
            raise
        assert isinstance(p, Payment)
        verdict = service.validate_payment(p.account, str(p.amount), caller)
        return ACCEPTED if verdict.outcome == "ok" else rejected(verdict.outcome)

    @router.post(PREFIX + "/c2b/confirmation")
    def confirmation(request: Request, body: JsonBody) -> dict[str, str]:
        caller = channel.check(request)
        p = mpesa.parse_callback("c2b", body)
        assert isinstance(p, Payment)
        service.receive_payment(p, caller)  # recorded: sold, or an exception to settle
        return {"ResultCode": "0", "ResultDesc": "Accepted"}

    @router.post(PREFIX + "/stk/callback")
    def stk_callback(request: Request, body: JsonBody) -> dict[str, str]:
        caller = channel.check(request)
        outcome = mpesa.parse_callback("stk", body)
        assert isinstance(outcome, PromptOutcome)
        service.prompt_result("mpesa", outcome.request_id, outcome.result_code,
                              outcome.result_desc, outcome.payment, caller)
        return {"ResultCode": "0", "ResultDesc": "Accepted"}

    @router.api_route(PREFIX + "/momo/callback", methods=["POST", "PUT"])
    def momo_callback(request: Request, body: JsonBody) -> dict[str, str]:
        caller = momo_channel.check(request)
        outcome = momo.parse_callback("rtp", body)
        assert isinstance(outcome, PromptOutcome)
        service.prompt_result("momo", outcome.request_id, outcome.result_code,
                              outcome.result_desc, outcome.payment, caller)
        return {"status": "accepted"}

    @router.post(USSD_PATH)
    def ussd_callback(request: Request,
                      sessionId: Annotated[str, Form(max_length=MAX_FIELD)],
                      phoneNumber: Annotated[str, Form(max_length=MAX_FIELD)],
                      serviceCode: Annotated[str, Form(max_length=MAX_FIELD)] = "",
                      text: Annotated[str, Form(max_length=MAX_FIELD)] = "") -> Response:
        caller = channel.check(request)
        screen = ussd.answer(service, caller, mpesa, phoneNumber, text, sessionId)
        return PlainTextResponse(screen)

    app.include_router(router)
    buy.mount(app, service, channel.caller, mpesa.initiate)  # the self-service page: /buy
