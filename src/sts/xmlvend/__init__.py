"""XMLVend 2.1 (NRS 009-6-10 / SANS 1524-6-10), the online-vending SOAP interface of existing
vending clients: one endpoint on `sts serve` (docs/xmlvend.md).

`mount(app, service)` adds it to an app: POST on `/xmlvend`, `/xmlvend/xmlvend` and
`/xmlvend/xmlvend.wsdl`; GET `/xmlvend/xmlvend.wsdl` and `/xmlvend?wsdl` for the WSDL (its
`soap:address` is the URL the request came in on) and the XSDs beside it.  The face only
translates: `face.Face` reads a request, authenticates the client system and its operator
(`sts.vending.access.vend_clients`), calls one use case of the vending service and renders the
answer in the client's profile (`tree`).
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from sts.http.tls import client_cert_sha256
from sts.vending.service import VendingService
from sts.xmlvend import wire
from sts.xmlvend.face import Answer, Face, Settings
from sts.xmlvend.faults import XMLVendFault

PREFIX = "/xmlvend"
SCHEMAS = ("xmlvend-base-2.1.xsd", "xmlvend-meter-2.1.xsd", "xmlvend-revenue-2.1.xsd")
WSDL = "xmlvend-2.1.wsdl"
MAX_BODY = 65536


def schema_text(name: str) -> str:
    return (resources.files("sts.xmlvend") / "schema" / name).read_text(encoding="utf-8")


def settings_from_env() -> Settings:
    return Settings(server_ean=os.environ.get("STS_XMLVEND_SERVER_EAN", "0000000000000"),
                    lease_seconds=float(os.environ.get("STS_XMLVEND_LEASE", "60")),
                    cert_header=os.environ.get("STS_XMLVEND_CERT_HEADER") or None,
                    default_profile=os.environ.get("STS_XMLVEND_DEFAULT_PROFILE", "hexing"))


def _base_url(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return f"{request.url.scheme}://{request.url.netloc}{root}"


def wsdl_for(request: Request) -> str:
    """The WSDL with its soap:address set to the URL this request came in on, and the schema
    imports pointing at the XSDs served beside it."""
    base = _base_url(request) + PREFIX
    text = schema_text(WSDL)
    text = text.replace('location="https://localhost:8443/xmlvend"', f'location="{base}"')
    for name in SCHEMAS:
        text = text.replace(f'schemaLocation="{name}"', f'schemaLocation="{base}/{name}"')
    return text


def _respond(answer: Answer, accept_encoding: str | None) -> Response:
    data = answer.body.encode("utf-8")
    headers: dict[str, str] = {}
    if wire.wants_gzip(accept_encoding) and len(data) > 512:
        data = wire.compress(data)
        headers["Content-Encoding"] = "gzip"
    return Response(data, status_code=answer.status, media_type=wire.content_type(answer.soap),
                    headers=headers)


def mount(app: FastAPI, service: VendingService, settings: Settings | None = None) -> Face:
    """Serve XMLVend on `app` (one call in the app factory); returns the face.  Mounting again
    replaces the face (its settings) and keeps the routes."""
    face = Face(service, settings or settings_from_env())
    mounted = getattr(app.state, "xmlvend", None) is not None
    app.state.xmlvend = face
    if mounted:
        return face

    async def soap(request: Request) -> Response:
        face: Face = request.app.state.xmlvend
        body = await request.body()
        # mutual TLS on `sts serve` itself, or the header a verifying TLS proxy passes it in
        cert = client_cert_sha256(request.scope, face.settings.cert_header)
        try:
            body = wire.inflate(body, request.headers.get("content-encoding"), MAX_BODY * 4)
        except XMLVendFault as fault:
            answer = face.fault_answer(fault, None, face.settings.default_profile, wire.SOAP11)
            return _respond(answer, None)
        answer = await run_in_threadpool(face.handle, body, request.headers.get("content-type"),
                                         cert)
        return _respond(answer, request.headers.get("accept-encoding"))

    async def get_root(request: Request) -> Response:
        if "wsdl" in {k.lower() for k in request.query_params}:
            return Response(wsdl_for(request), media_type="text/xml; charset=utf-8")
        return render_error(request, 405, {"message": "POST a SOAP request, or GET ?wsdl"})

    async def get_wsdl(request: Request) -> Response:
        return Response(wsdl_for(request), media_type="text/xml; charset=utf-8")

    def xsd_route(name: str) -> Any:
        async def get_xsd() -> Response:
            return Response(schema_text(name), media_type="text/xml; charset=utf-8")
        return get_xsd

    for path in (PREFIX, f"{PREFIX}/xmlvend", f"{PREFIX}/xmlvend.wsdl"):
        app.add_api_route(path, soap, methods=["POST"], include_in_schema=False)
    app.add_api_route(PREFIX, get_root, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{PREFIX}/xmlvend.wsdl", get_wsdl, methods=["GET"],
                      include_in_schema=False)
    for name in SCHEMAS:
        app.add_api_route(f"{PREFIX}/{name}", xsd_route(name), methods=["GET"],
                          include_in_schema=False)
    if not hasattr(app.state, "error_renderers"):
        app.state.error_renderers = {}
    app.state.error_renderers[PREFIX] = render_error
    return face


def render_error(request: Request, status: int, body: dict[str, Any]) -> Response:
    """Errors the framework answers under /xmlvend (unknown path, wrong method, a body over
    the limit) as SOAP faults, HTTP 500 like every fault."""
    face: Face = request.app.state.xmlvend
    message = str(body.get("message") or f"HTTP {status}")[:300]
    kind = "UseCaseSupportEx" if status in (404, 405) else "XMLVendSchemaEx"
    fault = XMLVendFault(kind, message, code=f"STS.HTTP_{status}", client=True)
    answer = face.fault_answer(fault, None, face.settings.default_profile, wire.SOAP11)
    return _respond(answer, None)
