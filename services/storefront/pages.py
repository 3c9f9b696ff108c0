"""The widget script and a demo shop page that uses it (``make run`` serves it at ``/demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"

PAGES = {
    "home": ("Demo shop", "Headphones, speakers and cables, shipped in two days."),
    "category": ("Headphones", "Twelve models, from studio to sport."),
    "product": ("Aurora X2 headphones", "Noise-cancelling, 30 hours of battery, folding."),
    "help": ("Shipping and returns", "We ship within two working days; returns are free for 30 days."),
    "cart": ("Your cart", "One item: Aurora X2 headphones, 199.00 EUR."),
    "checkout": ("Checkout", "Delivery address and payment."),
}


@router.get("/widget.js")
async def widget() -> FileResponse:
    return FileResponse(
        STATIC / "widget.js", media_type="text/javascript", headers={"Cache-Control": "public, max-age=300"}
    )


@router.get("/demo", response_class=HTMLResponse)
async def demo(
    page: Annotated[Literal["home", "category", "product", "help", "cart", "checkout"], Query()] = "home",
    heartbeat: Annotated[float, Query(ge=0.5, le=60)] = 15,
) -> str:
    title, text = PAGES[page]
    links = " ".join(f'<a href="/demo?page={p}&amp;heartbeat={heartbeat:g}">{PAGES[p][0]}</a>' for p in PAGES)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="proact:page-type" content="{page}">
<title>{title} · demo shop</title>
<script src="/widget.js" data-endpoint="" data-heartbeat="{heartbeat:g}" defer></script>
</head>
<body style="font:16px/1.5 sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem">
<nav aria-label="shop">{links}</nav>
<main><h1>{title}</h1><p>{text}</p></main>
</body>
</html>"""
