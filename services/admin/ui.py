"""The marketers' web UI: one HTML shell and a small front end (``static/``) on the JSON API.

Why a small front end and not server-rendered pages: every page is a view of the same JSON API that
scripts use, so the UI can do nothing the API does not allow, and authorisation has one path (the
API key as a bearer token, kept in the tab's ``sessionStorage`` and forgotten when it closes; no
cookie, so no cross-site request forgery to defend against). It is plain modules, no framework and
no build step: nothing to install on a machine without a JavaScript tool chain, and every page is
usable with the keyboard (native controls, labels, a skip link, errors announced in a live region).
A strict Content-Security-Policy allows scripts and styles from the admin itself only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>proact admin</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/static/admin.css">
<script type="module" src="/ui/static/admin.js"></script>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header><nav aria-label="Main"><a class="brand" href="/ui/overview">proact</a>
<a href="/ui/overview">Overview</a><a href="/ui/rules">Rules</a><a href="/ui/templates">Templates</a>
<a href="/ui/ratings">Ratings</a><a href="/ui/callbacks">Callbacks</a>
<a href="/ui/customers">Customers</a><a href="/ui/churn">Churn causes</a>
<a href="/ui/policy">Contact policy</a><a href="/ui/dead-letters">Dead letters</a>
<a href="/ui/models">Models</a><a href="/ui/audit">Audit log</a><a href="/ui/keys">API keys</a>
<span id="who" class="who"></span></nav></header>
<main id="main" tabindex="-1"><p>Loading…</p></main>
<p id="status" class="status" role="status" aria-live="polite"></p>
</body>
</html>"""
TYPES = {".js": "text/javascript", ".css": "text/css"}


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/overview")


@router.get("/ui/static/{name}")
async def static(name: str) -> FileResponse:
    path = STATIC / Path(name).name
    if path.suffix not in TYPES or not path.is_file():
        raise HTTPException(404, f"no file {name}")
    return FileResponse(path, media_type=TYPES[path.suffix], headers=SECURITY_HEADERS)


@router.get("/ui", response_class=HTMLResponse)
@router.get("/ui/{page:path}", response_class=HTMLResponse)
async def shell(page: str = "") -> HTMLResponse:
    """Every page is the same shell; the front end reads the path and draws the page."""
    return HTMLResponse(SHELL, headers=SECURITY_HEADERS)
