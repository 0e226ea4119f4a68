"""/docs (Swagger UI) and /redoc, with no internet: their assets come from PyPI's
fastapi-offline, which bundles them, and a Content-Security-Policy keeps the
pages from reaching elsewhere (ReDoc fetches its logo from a CDN otherwise).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.openapi import OPENAPI_URL

ASSETS = "/docs-assets"
# Swagger UI starts itself with an inline script; nothing may come from another origin.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def _secured(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = CSP
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return _secured(
        get_swagger_ui_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=f"{request.app.title} - API reference",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # No call to validator.swagger.io for the validity badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return _secured(
        get_redoc_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
    )


def mount(app: FastAPI) -> None:
    """The bundled Swagger UI and ReDoc files; create the app with docs_url=None, redoc_url=None."""
    static = files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
