"""``python -m services.storefront``: serve the storefront API with uvicorn."""

from __future__ import annotations

from services.storefront.app import create_app
from shared.settings import StorefrontSettings
from shared.web import serve

if __name__ == "__main__":
    serve("storefront", StorefrontSettings(), create_app)
