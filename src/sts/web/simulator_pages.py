"""The meter on the screen: LCD and keypad in the browser, the meter itself on the server."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from sts.errors import InputError, StsError
from sts.meter.codes import DISPLAY_CODES
from sts.vending.access.operators import Operator
from sts.vending.usecases.simulator import Simulator, meter_choices
from sts.web.common import drn_of, meter_number, need, posted, web_of

router = APIRouter()
Anyone = Annotated[Operator, Depends(need("simulator"))]
AnyPost = Annotated[tuple[Operator, dict[str, str]], Depends(posted("simulator"))]


def _sim(request: Request) -> Simulator:
    web = web_of(request)
    sim = getattr(request.app.state, "simulator", None)
    if sim is None:
        sim = request.app.state.simulator = Simulator(web.service)
    return sim


def _answer(fn: Any, *args: Any) -> JSONResponse:
    try:
        return JSONResponse(fn(*args))
    except StsError as exc:
        return JSONResponse({"error": exc.message, "field": exc.field}, status_code=422)


def _number(form: dict[str, str], name: str) -> float:
    try:
        return float(form.get(name, ""))
    except ValueError:
        raise InputError(f"{name} must be a number", field=name) from None


@router.get("/simulator")
def page(request: Request, op: Anyone, meter: str | None = None) -> Response:
    web = web_of(request)
    choices = meter_choices(web.service)
    ctx: dict[str, Any] = {"choices": choices, "error": None, "pan": None, "meter_text": meter,
                           "codes": DISPLAY_CODES}
    try:
        if meter:
            ctx["pan"] = meter_number(meter)
        elif choices:
            ctx["pan"] = choices[0]["pan"]
        if ctx["pan"]:
            ctx["drn"] = drn_of(ctx["pan"])
            ctx["state"] = _sim(request).view(ctx["pan"], op.id)
    except StsError as exc:
        ctx["error"], ctx["pan"] = exc.message, None
    return web.render(request, "simulator.html", op, **ctx)


@router.get("/simulator/state")
def state(request: Request, op: Anyone, meter: str) -> JSONResponse:
    return _answer(lambda: _sim(request).view(meter_number(meter), op.id))


@router.post("/simulator/press")
def press(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    return _answer(lambda: _sim(request).press(meter_number(form.get("meter")),
                                               form.get("key", ""), op.id))


@router.post("/simulator/enter")
def enter(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    return _answer(lambda: _sim(request).enter(meter_number(form.get("meter")),
                                               form.get("token", ""), op.id))


@router.post("/simulator/load")
def load(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    return _answer(lambda: _sim(request).set_load(meter_number(form.get("meter")),
                                                  _number(form, "watts"), op.id))


@router.post("/simulator/advance")
def advance(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    return _answer(lambda: _sim(request).advance(meter_number(form.get("meter")),
                                                 _number(form, "seconds"), op.id))


@router.post("/simulator/reset")
def reset(request: Request, posted_: AnyPost) -> JSONResponse:
    op, form = posted_
    sim = _sim(request)

    def go() -> dict[str, Any]:
        pan = meter_number(form.get("meter"))
        sim.reset(pan, op.id)
        return sim.view(pan, op.id)

    return _answer(go)
