"""The folder a server may show score tables from (``agiqa serve --gallery-dir DIR``), and nothing outside it.

Only tables found under the folder are listed and opened, and only images whose real path (symlinks followed) is
inside it are served: a table name or an ``image`` cell that leads elsewhere (``../``, an absolute path, a symlink
out of the folder) is refused with ``OutsideGallery``. A relative ``image`` cell is looked up beside its table,
then at the folder's top.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from agiqa.data.files import resolve_image
from agiqa.io import INPUT_FORMATS, read_table

MAX_TABLES = 500
"""Most tables listed (the first ones in sorted order)."""


class OutsideGallery(PermissionError):
    """A path that resolves outside the gallery folder."""


class GalleryFolder:
    """Score tables and their images under one folder.

    Args:
        root: The folder (must exist).

    Raises:
        NotADirectoryError: ``root`` is not a folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"{root}: not a folder; --gallery-dir needs a folder of score tables")
        self._read: dict[Path, tuple[int, pd.DataFrame]] = {}  # last table read per file, with its mtime

    def inside(self, path: Path) -> Path:
        """``path`` with symlinks resolved, if it lies inside the folder; else ``OutsideGallery``."""
        real = path.resolve()
        if real != self.root and self.root not in real.parents:
            raise OutsideGallery("that path leads outside the gallery folder")
        return real

    def tables(self) -> list[str]:
        """Relative paths (``/``-separated) of the score tables under the folder, sorted."""
        found = []
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if any(part.startswith(".") or part.endswith(".partial") for part in rel.parts):
                continue
            if path.suffix.lower() in INPUT_FORMATS and path.is_file():
                try:
                    self.inside(path)
                except OutsideGallery:
                    continue
                found.append(rel.as_posix())
                if len(found) >= MAX_TABLES:
                    break
        return found

    def table_path(self, name: str) -> Path:
        """The file of a listed table name.

        Raises:
            OutsideGallery: The name leads outside the folder.
            FileNotFoundError: No such table.
        """
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or "\\" in name:
            raise OutsideGallery(f"{name!r}: table names are paths inside the gallery folder")
        path = self.inside(self.root / rel)
        if not path.is_file() or path.suffix.lower() not in INPUT_FORMATS:
            raise FileNotFoundError(f"{name!r}: no such score table in the gallery folder")
        return path

    def table(self, name: str) -> pd.DataFrame:
        """A table as text (``agiqa.io.read_table``); it must have an ``image`` column.

        Raises:
            ValueError: No ``image`` column.
        """
        path = self.table_path(name)
        mtime = path.stat().st_mtime_ns
        if path not in self._read or self._read[path][0] != mtime:
            self._read[path] = (mtime, read_table(path))
        frame = self._read[path][1]
        if "image" not in frame.columns:
            raise ValueError(f"{name!r} has no 'image' column; it is not a score table")
        return frame

    def image(self, name: str, row: int) -> Path:
        """The image of row ``row`` (0-based) of table ``name``.

        Raises:
            IndexError: No such row.
            OutsideGallery: The image lies outside the folder.
        """
        frame = self.table(name)
        if not 0 <= row < len(frame):
            raise IndexError(f"{name!r} has {len(frame)} rows; row {row} does not exist")
        table = self.table_path(name)
        return self.inside(resolve_image(str(frame["image"].iloc[row]), [table.parent, self.root]))
