"""Engineering tokens (engineer): management tokens for a meter, each with a reason, made
through the service (audited, exactly once per request id made by the page)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.codec.pan import printed_number
from sts.errors import InputError, StsError
from sts.vending.access.operators import Operator
from sts.web.common import meter_number, need, posted, web_of

router = APIRouter()
Engineer = Annotated[Operator, Depends(need("engineering"))]
EngineerPost = Annotated[tuple[Operator, dict[str, str]], Depends(posted("engineering"))]

ENGINEERING = (("clear_tamper", "Clear tamper"), ("clear_credit", "Clear credit"),
               ("power_limit", "Set maximum power limit"),
               ("phase_unbalance", "Set phase unbalance limit"),
               ("key_change", "Key change (to the supply group's current key)"),
               ("test", "Test / display (all tests)"))


def _engineering(request: Request, op: Operator, *, status: int = 200, **ctx: Any) -> Response:
    web = web_of(request)
    ctx.setdefault("form", {})
    ctx.setdefault("error", None)
    return web.render(request, "engineering.html", op, status=status, types=ENGINEERING,
                      request_id=str(uuid.uuid4()), **ctx)


@router.get("/engineering")
def engineering_page(request: Request, op: Engineer) -> Response:
    return _engineering(request, op)


@router.post("/engineering")
def engineering(request: Request, posted_: EngineerPost) -> Response:
    op, form = posted_
    web = web_of(request)
    try:
        body: dict[str, Any] = {"meter": meter_number(form.get("meter")),
                                "type": form.get("type", ""), "reason": form.get("reason", "")}
        if body["type"] in ("power_limit", "phase_unbalance"):
            watts = form.get("watts", "").strip()
            if not watts.isdigit():
                raise InputError("give the limit in watts", field="watts")
            body["watts"] = int(watts)
        rid = form.get("request_id", "")
        try:
            uuid.UUID(rid)
        except ValueError:
            raise InputError("the form is damaged; open the page again",
                             field="request_id") from None
        out, _ = web.service.engineering(rid, body, web.caller(op))
    except StsError as exc:
        return _engineering(request, op, status=exc.http_status, error=exc,
                            error_field=exc.field, form=form)
    return _engineering(request, op, issued=out, drn=printed_number(out["meter"]["pan"]), form={})
