"""Running the service: ``run_server`` (what ``agiqa serve`` calls) starts uvicorn with the request log on."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from agiqa.api import Scorer
from agiqa.serve.app import create_app
from agiqa.serve.options import ServeOptions


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration plus the ``agiqa.serve`` request log (which replaces uvicorn's access log)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["agiqa.serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def run_server(
    scorer: Scorer,
    options: ServeOptions | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    gallery_dir: str | Path | None = None,
) -> None:
    """Serve ``scorer`` on ``host:port`` until interrupted (one process, one scoring worker; see docs/serving.md).

    Args:
        scorer: The loaded model.
        options: Limits and queueing (``ServeOptions()`` when None).
        host: Interface to listen on.
        port: Port to listen on.
        gallery_dir: Folder of score tables the web page may open (``agiqa.serve.page``); None for none.
    """
    import uvicorn

    app = create_app(scorer, options, gallery_dir=gallery_dir)
    uvicorn.run(app, host=host, port=port, log_config=log_config(), access_log=False, timeout_keep_alive=5)
