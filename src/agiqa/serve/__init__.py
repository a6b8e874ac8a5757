"""HTTP scoring service (optional extra ``agiqa[serve]``): ``create_app(scorer, options)`` gives a FastAPI app,
``run_server`` runs it with uvicorn as ``agiqa serve`` does, ``ServeOptions`` holds its limits.

Names are imported on first use, so ``ServeOptions`` is available without the server extra installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"ServeOptions": "agiqa.serve.options", "create_app": "agiqa.serve.app", "run_server": "agiqa.serve.run"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'agiqa.serve' has no attribute {name!r}")


__all__ = sorted(_WHERE)
