"""agiqa: quality, alignment and preference assessment of AI-generated images."""

__version__ = "0.1.0"

_LAZY = {
    "load": "agiqa.api",
    "Scorer": "agiqa.api",
    "ScoreResult": "agiqa.api",
    "list_models": "agiqa.models.registry",
    "create_model": "agiqa.models.registry",
}


def __getattr__(name: str) -> object:
    # Lazy exports: `import agiqa` stays light (no torch) until the API is used.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agiqa' has no attribute {name!r}")


__all__ = ["Scorer", "ScoreResult", "__version__", "create_model", "list_models", "load"]
