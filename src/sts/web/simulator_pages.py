"""The meter on the screen: LCD and keypad in the browser, the meter itself on the server."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from sts.codec.pan import printed_number
from sts.errors import InputError, StsError
from sts.meter.codes import DISPLAY_CODES
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_, said
from sts.vending.usecases import lists
from sts.vending.usecases.simulator import Simulator
from sts.web.common import meter_number, need, posted, web_of, words
from sts.web.paging import params

router = APIRouter()
Anyone = Annotated[Operator, Depends(need("simulator"))]
AnyPost = Annotated[tuple[Operator, dict[str, str]], Depends(posted("simulator"))]


def _sim(request: Request, op: Operator) -> Simulator:
    """The signed-in operator's own meters (a trainee's keys never reach another's screen)."""
    return Simulator(web_of(request).service, op.id)


def _answer(request: Request, op: Operator, fn: Any) -> JSONResponse:
    """The meter's state for the page's script (what its display means) or the refusal, in
    the operator's language (the meter layer keeps the English, marked for translation)."""
    _ = words(request, op)
    try:
        out = fn()
    except StsError as exc:
        return JSONResponse({"error": said(exc, _), "field": exc.field}, status_code=422)
    shown = out.get("display") if isinstance(out, dict) else None
    if isinstance(shown, dict) and shown.get("meaning"):
        out["display"] = shown | {"meaning": _(shown["meaning"])}
    return JSONResponse(out)


def _number(form: dict[str, str], name: str) -> float:
    try:
        return float(form.get(name, ""))
    except ValueError:
        raise InputError(f"{name} must be a number", field=name) from None


@router.get("/simulator")
def page(request: Request, op: Anyone, meter: str | None = None) -> Response:
    """The meter asked for (or the first of the picker's page) on the screen, and a page of
    the meters to pick from (searched, paged: `lists.pick_meters`)."""
    web = web_of(request)
    query = params(request)
    query.pop("meter", None)
    try:
        choices = lists.pick_meters(web.service, web.caller(op), query)
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Not accepted"), message=exc)
    ctx: dict[str, Any] = {"choices": choices, "error": None, "pan": None, "meter_text": meter,
                           "codes": DISPLAY_CODES}
    try:
        if meter:
            ctx["pan"] = meter_number(meter)
        elif choices.rows:
            ctx["pan"] = choices.rows[0]["pan"]
        if ctx["pan"]:
            ctx["drn"] = printed_number(ctx["pan"])
            choices.filters = {"meter": ctx["drn"]}
            ctx["state"] = _sim(request, op).view(ctx["pan"])
    except StsError as exc:
        ctx["error"], ctx["pan"] = exc, None
    return web.render(request, "simulator.html", op, **ctx)


@router.get("/simulator/state")
def state(request: Request, op: Anyone, meter: str) -> JSONResponse:
    return _answer(request, op, lambda: _sim(request, op).view(meter_number(meter)))


@router.post("/simulator/press")
def press(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    sim = _sim(request, op)
    return _answer(request, op, lambda: sim.press(meter_number(form.get("meter")),
                                                     form.get("key", "")))


@router.post("/simulator/enter")
def enter(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    sim = _sim(request, op)
    return _answer(request, op, lambda: sim.enter(meter_number(form.get("meter")),
                                                     form.get("token", "")))


@router.post("/simulator/load")
def load(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    sim = _sim(request, op)
    return _answer(request, op, lambda: sim.set_load(meter_number(form.get("meter")),
                                                     _number(form, "watts")))


@router.post("/simulator/advance")
def advance(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    sim = _sim(request, op)
    return _answer(request, op, lambda: sim.advance(meter_number(form.get("meter")),
                                                     _number(form, "seconds")))


@router.post("/simulator/reset")
def reset(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    sim = _sim(request, op)

    def go() -> dict[str, Any]:
        pan = meter_number(form.get("meter"))
        sim.reset(pan)
        return sim.view(pan)

    return _answer(request, op, go)
