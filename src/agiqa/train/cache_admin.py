"""What the feature cache holds and how to empty it: ``cache_contents`` and ``clear_cache`` (``agiqa cache``).

Only what ``agiqa.train.cache`` writes is listed and removed: namespace folders named ``img-*``, ``txt-*`` or
``enc-*`` holding ``shard-*.safetensors`` files (or an ``about.json``); anything else under the root is left alone, so
pointing ``$AGIQA_CACHE_DIR`` at a shared folder is safe.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from safetensors import safe_open

from agiqa.train.cache import ABOUT, default_cache_dir

KINDS = {"img-": "image features", "txt-": "text features", "enc-": "encoder outputs"}
PREFIXES = tuple(KINDS)


@dataclass(frozen=True)
class CacheNamespace:
    """One namespace folder of the cache.

    Attributes:
        folder: Where it is.
        kind: ``image features``, ``text features`` or ``encoder outputs``.
        encoder: Encoder spec the features come from (empty when unknown: written by an agiqa that did not yet
            describe its namespaces).
        model: Model class whose features these are (empty for encoder outputs or when unknown).
        entries: Cached items (images, views or prompts).
        size: Bytes on disk.
    """

    folder: Path
    kind: str
    encoder: str
    model: str
    entries: int
    size: int


def _namespaces(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith(PREFIXES) and (any(p.glob("shard-*.safetensors")) or (p / ABOUT).is_file())
    )


def cache_contents(root: str | Path | None = None) -> list[CacheNamespace]:
    """Every namespace of the cache at ``root`` (default ``default_cache_dir()``), with its size and entry count."""
    out = []
    for folder in _namespaces(Path(root).expanduser() if root is not None else default_cache_dir()):
        about: dict[str, str] = {}
        if (folder / ABOUT).is_file():
            try:
                about = json.loads((folder / ABOUT).read_text())
            except ValueError:
                about = {}
        keys: set[str] = set()
        for shard in folder.glob("shard-*.safetensors"):
            try:
                with safe_open(str(shard), framework="pt") as fh:
                    keys |= {name.rpartition("/")[0] for name in fh.keys()}
            except Exception:  # a damaged shard still takes space; it is counted, not read
                continue
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        out.append(
            CacheNamespace(
                folder,
                about.get("kind", KINDS[folder.name[:4]]),
                about.get("encoder", ""),
                about.get("model", ""),
                len(keys),
                size,
            )
        )
    return out


def clear_cache(root: str | Path | None = None) -> tuple[int, int]:
    """Remove every namespace of the cache at ``root``; returns how many folders and bytes were removed."""
    contents = cache_contents(root)
    for namespace in contents:
        shutil.rmtree(namespace.folder)
    return len(contents), sum(n.size for n in contents)
