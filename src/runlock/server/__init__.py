"""The team server (``runlock server``): one store for a team, behind tokens and roles.

``create_app(store)`` is the FastAPI app; ``serve`` runs it on uvicorn. See docs/server.md.
"""

from __future__ import annotations

from runlock.server.app import create_app
from runlock.server.serve import serve

__all__ = ["create_app", "serve"]
