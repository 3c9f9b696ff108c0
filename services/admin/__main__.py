"""``python -m services.admin``: serve the admin API with uvicorn."""

from __future__ import annotations

from services.admin.app import create_app
from shared.settings import AdminSettings
from shared.web import serve

if __name__ == "__main__":
    serve("admin", AdminSettings(), create_app)
