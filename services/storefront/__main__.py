"""``python -m services.storefront``: serve the storefront API with uvicorn."""

from __future__ import annotations

from services.storefront.app import create_app
from shared.settings import StorefrontSettings
from shared.web import serve

if __name__ == "__main__":
    # the decision call traces only the calls that come with a trace context (see views.decide)
    serve("storefront", StorefrontSettings(), create_app, untraced=("v1/decide",))
