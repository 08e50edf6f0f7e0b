"""The API's interactive documentation at /docs, served whole by this server: the Swagger UI
files come from the `swagger-ui-bundle` distribution (Apache-2.0; its licence is served at
/docs/assets/LICENSE), never from a CDN, so /docs works on a network without internet."""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def assets_dir() -> Path:
    """The Swagger UI files inside the installed `swagger_ui_bundle` package."""
    vendor = Path(str(resources.files("swagger_ui_bundle") / "vendor"))
    found = sorted(vendor.glob("swagger-ui-*/swagger-ui-bundle.js"))
    if not found:
        raise RuntimeError("swagger-ui-bundle is installed without its Swagger UI files")
    return found[-1].parent


def _licence() -> str:
    """The distribution's licence text (Apache-2.0, covering the Swagger UI files)."""
    dist = metadata.distribution("swagger-ui-bundle")
    for f in dist.files or ():
        if f.name.upper().startswith("LICEN"):
            return Path(str(dist.locate_file(f))).read_text(encoding="utf-8")
    return "Swagger UI: Apache License 2.0 (swagger-ui-bundle distribution)\n"


def mount(app: FastAPI) -> None:
    """/docs (Swagger UI over /openapi.json), its assets and the OAuth2 redirect page."""
    licence = _licence()

    @app.get(ASSETS + "/LICENSE", include_in_schema=False)
    def docs_licence() -> PlainTextResponse:
        return PlainTextResponse(licence)

    app.mount(ASSETS, StaticFiles(directory=str(assets_dir())), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def docs_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
