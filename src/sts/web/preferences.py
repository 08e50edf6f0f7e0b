"""An operator's own preferences: the language of their pages and slips."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from sts.errors import StsError
from sts.vending.access.operators import Operator
from sts.vending.i18n import N_
from sts.vending.registry import operators as accounts
from sts.web.common import posted, redirect, web_of

router = APIRouter()
Anyone = Annotated[tuple[Operator, dict[str, str]], Depends(posted())]


@router.post("/me/language")
def language(request: Request, posted_: Anyone) -> Response:
    web = web_of(request)
    op, form = posted_
    back = form.get("next", "/")
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    try:
        accounts.set_language(web.registry(op), op.username, form.get("language") or None)
    except StsError as exc:
        return web.render(request, "error.html", op, status=exc.http_status,
                          title=N_("Language"), message=exc)
    return redirect(back)
