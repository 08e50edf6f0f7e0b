"""The web application (issue 10): sign-in, point of sale, back office, reports and a meter on
the screen, served by `sts serve` beside /v1.

Pages are a face: they translate forms into calls of the vending service, registry and the
modules beside them (operators, floats, reports, test tokens), and authorise per role on the
server.  No business rule lives here.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from sts.vending import i18n
from sts.vending.i18n import N_
from sts.vending.service import VendingService
from sts.web.common import (
    HERE,
    BadInput,
    Forbidden,
    SignInNeeded,
    Web,
    current,
    plain_query,
    redirect,
    words,
)


def mount(app: FastAPI, service: VendingService) -> None:
    """Add the pages, their static files and their error pages to the API's app."""
    from sts.web import (
        audit_pages,
        backoffice,
        backoffice_people,
        backoffice_tariffs,
        backoffice_vendors,
        engineering,
        payments_office,
        pos,
        preferences,
        registers,
        reports,
        shifts,
        signin,
        simulator_pages,
    )

    web = Web(service)
    app.state.web = web
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (signin, pos, backoffice, backoffice_tariffs, registers, backoffice_vendors,
                   backoffice_people, engineering, reports, simulator_pages, audit_pages, shifts,
                   payments_office, preferences):
        app.include_router(module.router, include_in_schema=False,
                           dependencies=[Depends(plain_query)])

    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        return redirect(f"/login?next={exc.next_path}")

    def forbidden(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, Forbidden)
        op = current(request)
        # no database call for a refusal before sign-in: the house style last read
        reader = (words(request, op) if op is not None
                  else i18n.gettext_for(web.refusal_style().locale))
        return web.render(request, "error.html", op, status=403, title=N_("Not allowed"),
                          message=exc.said(reader))

    def bad_input(request: Request, exc: Exception) -> HTMLResponse:
        assert isinstance(exc, BadInput)
        reader = i18n.gettext_for(web.refusal_style().locale)
        return web.render(request, "error.html", None, status=422, title=N_("Not accepted"),
                          message=exc.said(reader))

    app.add_exception_handler(SignInNeeded, sign_in_needed)
    app.add_exception_handler(BadInput, bad_input)
    app.add_exception_handler(Forbidden, forbidden)
