"""Finding the image files a user names: folders searched recursively, table rows resolved against folders."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
"""File extensions taken for images when a folder is searched."""


@dataclass(frozen=True)
class ImageScan:
    """What a search for images found.

    Attributes:
        files: Image files, in order (files as given, then each folder's images sorted).
        skipped: Files inside the searched folders that were left out, counted by extension (lower case;
            ``(none)`` for files without one).
    """

    files: list[Path]
    skipped: dict[str, int] = field(default_factory=dict)

    def skipped_summary(self) -> str:
        """``skipped 3 files: 2 .svg, 1 .heic`` (empty when nothing was skipped)."""
        if not self.skipped:
            return ""
        total = sum(self.skipped.values())
        kinds = ", ".join(f"{n} {ext}" for ext, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])))
        return f"skipped {total} file{'s' if total > 1 else ''}: {kinds}"


def scan_images(paths: Sequence[str | Path]) -> ImageScan:
    """Image files named by ``paths``: files as given, folders searched recursively (sorted; by extension, see
    ``IMAGE_EXTENSIONS``), and a count of the other files found in the folders.

    Raises:
        FileNotFoundError: A path does not exist.
    """
    found: list[Path] = []
    skipped: Counter[str] = Counter()
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(walk_images(path, skipped))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return ImageScan(found, dict(skipped))


def find_images(paths: Sequence[str | Path]) -> list[Path]:
    """The files of ``scan_images(paths)``.

    Raises:
        FileNotFoundError: A path does not exist.
    """
    return scan_images(paths).files


def walk_images(folder: Path, skipped: Counter[str] | None = None) -> Iterator[Path]:
    """Image files under ``folder``, unsorted, from ``os.scandir`` (the kind of an entry comes with the listing,
    so a folder of 100,000 files costs no stat per file). Symlinked folders are not entered (no loops); unreadable
    folders are passed over. Other files are counted in ``skipped`` by extension (``(none)`` without one)."""
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
                elif entry.is_file():
                    ext = os.path.splitext(entry.name)[1].lower()
                    if ext in IMAGE_EXTENSIONS:
                        yield Path(entry.path)
                    elif skipped is not None:
                        skipped[ext or "(none)"] += 1


def resolve_image(name: str, roots: Sequence[Path]) -> Path:
    """Where the image ``name`` of a table is: absolute as is, else the first of ``roots / name`` that exists.

    When none exists the last candidate is returned, and decoding it reports the missing file.
    """
    path = Path(name).expanduser()
    if path.is_absolute() or not roots:
        return path
    candidates = [root / path for root in roots]
    return next((c for c in candidates if c.exists()), candidates[-1])
