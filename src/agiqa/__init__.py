"""agiqa: quality, alignment and preference assessment of AI-generated images."""

__version__ = "0.1.0"

_API = ("Scorer", "ScoreResult", "create_model", "list_models", "load")


def __getattr__(name: str) -> object:
    # Lazy exports: `import agiqa` stays light (no torch) until the API is used.
    if name in _API:
        from agiqa import api

        return getattr(api, name)
    raise AttributeError(f"module 'agiqa' has no attribute {name!r}")


__all__ = ["Scorer", "ScoreResult", "__version__", "create_model", "list_models", "load"]
