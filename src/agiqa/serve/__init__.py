"""HTTP scoring service (optional extra ``agiqa[serve]``): ``create_app(scorer)`` gives a FastAPI app."""

from agiqa.serve.app import create_app

__all__ = ["create_app"]
