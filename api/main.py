"""`api.main:app` for servers that want a module attribute (`uvicorn api.main:app`).

The app is created on first access, not at import time; `uvicorn api.app:create_app
--factory` is the equivalent without this module.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from api.app import create_app

        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
