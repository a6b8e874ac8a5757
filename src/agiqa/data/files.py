"""Finding the image files a user names: folders searched recursively, table rows resolved against folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
"""File extensions taken for images when a folder is searched."""


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """Image files named by ``paths``: files as given, folders searched recursively (sorted, by extension).

    Raises:
        FileNotFoundError: A path does not exist.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def resolve_image(name: str, roots: Sequence[Path]) -> Path:
    """Where the image ``name`` of a table is: absolute as is, else the first of ``roots / name`` that exists.

    When none exists the last candidate is returned, and decoding it reports the missing file.
    """
    path = Path(name).expanduser()
    if path.is_absolute() or not roots:
        return path
    candidates = [root / path for root in roots]
    return next((c for c in candidates if c.exists()), candidates[-1])
