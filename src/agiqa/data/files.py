"""Finding the image files a user names: folders searched recursively, table rows resolved against folders."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
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
            found += sorted(walk_images(path))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


def walk_images(folder: Path) -> Iterator[Path]:
    """Image files under ``folder``, unsorted, from ``os.scandir`` (the kind of an entry comes with the listing,
    so a folder of 100,000 files costs no stat per file). Symlinked folders are not entered (no loops); unreadable
    folders are passed over."""
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = os.scandir(current)
        except (PermissionError, FileNotFoundError):
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_EXTENSIONS and entry.is_file():
                    yield Path(entry.path)


def resolve_image(name: str, roots: Sequence[Path]) -> Path:
    """Where the image ``name`` of a table is: absolute as is, else the first of ``roots / name`` that exists.

    When none exists the last candidate is returned, and decoding it reports the missing file.
    """
    path = Path(name).expanduser()
    if path.is_absolute() or not roots:
        return path
    candidates = [root / path for root in roots]
    return next((c for c in candidates if c.exists()), candidates[-1])
