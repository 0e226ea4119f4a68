"""The web playground at `/`: one static page, no build step, only the public API.

The page's script calls the same endpoints any client does (with the API key
the user types, kept in the tab's session storage); nothing here serves it data.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Response
from fastapi.staticfiles import StaticFiles

PAGES = Path(__file__).resolve().parent.parent / "playground"
# Scripts and styles only from the gateway; audio from the storage's presigned URLs.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src * blob: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)
_INDEX = (PAGES / "index.html").read_bytes()


@router.get("/")
async def playground() -> Response:
    headers = {"content-security-policy": CSP, "cache-control": "no-cache"}
    return Response(_INDEX, media_type="text/html; charset=utf-8", headers=headers)


def mount(app: FastAPI) -> None:
    """The page's script and stylesheet under /playground/."""
    app.mount("/playground", StaticFiles(directory=PAGES), name="playground")
