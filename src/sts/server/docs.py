"""The API's interactive documentation at /docs, served whole by this server: the Swagger UI 5
files (OpenAPI 3.1, as FastAPI writes it) come from the `swagger-ui-py` distribution, which
ships them with Swagger UI's licence (Apache-2.0, served at /docs/assets/LICENSE); never from a
CDN, so /docs works on a network without internet."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def assets_dir() -> Path:
    """The Swagger UI files inside the installed `swagger_ui` package (swagger-ui-py)."""
    static = Path(str(resources.files("swagger_ui") / "static"))
    if not (static / "swagger-ui-bundle.js").is_file():
        raise RuntimeError("swagger-ui-py is installed without its Swagger UI files")
    return static


def _licence() -> str:
    """Swagger UI's licence text, as the distribution ships it beside the files."""
    return (assets_dir() / "LICENSE").read_text(encoding="utf-8")


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
