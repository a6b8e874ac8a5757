"""agiqa: quality, alignment and preference assessment of AI-generated images."""

__version__ = "0.1.0"

_API = ("Scorer", "ScoreResult", "create_model", "list_models", "load")


def __getattr__(name: str) -> object:
    # Lazy exports: `import agiqa` stays light (no torch) until the API is used; `agiqa.api` works after `import agiqa`.
    if name in _API or name == "api":
        import importlib

        api = importlib.import_module("agiqa.api")
        return api if name == "api" else getattr(api, name)
    raise AttributeError(f"module 'agiqa' has no attribute {name!r}")


__all__ = ["Scorer", "ScoreResult", "__version__", "create_model", "list_models", "load"]
