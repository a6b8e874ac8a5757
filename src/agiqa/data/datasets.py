"""The dataset registry: every benchmark reader is registered here and loaded with ``load_dataset``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agiqa._registry import Registry
from agiqa.data.sample import Dataset

Reader = Callable[..., Dataset]


class DatasetError(ValueError):
    """A label file cannot be used at all (missing column, empty or unparsable file)."""


@dataclass(frozen=True)
class DatasetInfo:
    """A registered benchmark reader and what it produces.

    Attributes:
        name: Registry name (``agiqa3k`` ...).
        reader: ``reader(root, **options) -> Dataset``.
        dimensions: Label dimensions the reader can produce (empty when they come from the files).
        label_kind: ``mos``, ``rank`` (same-prompt groups with ranks, as pairs too) or ``pairs``.
        description: One line for ``agiqa datasets list``.
    """

    name: str
    reader: Reader
    dimensions: tuple[str, ...]
    label_kind: str
    description: str

    def options(self) -> list[str]:
        """Keyword options the reader accepts."""
        params = list(inspect.signature(self.reader).parameters.values())[1:]
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def register_dataset(
    name: str, *, dimensions: tuple[str, ...], label_kind: str, description: str
) -> Callable[[Reader], Reader]:
    """Decorator registering a reader ``(root: Path, *, option=...) -> Dataset`` under ``name``."""

    def deco(reader: Reader) -> Reader:
        DATASETS.add(name, DatasetInfo(name, reader, dimensions, label_kind, description))
        return reader

    return deco


def _with_builtins() -> Registry[DatasetInfo]:
    """The registry with the built-in readers imported (lazily: they pull in pandas, scipy, pyarrow)."""
    import agiqa.data.readers  # noqa: F401  (registers the built-in readers)

    return DATASETS


def get_dataset(name: str) -> DatasetInfo:
    """The registered reader ``name``; unknown names raise a ``KeyError`` with close matches."""
    return _with_builtins().get(name)


def list_datasets() -> list[DatasetInfo]:
    """All registered datasets, sorted by name."""
    return [get_dataset(n) for n in _with_builtins().names()]


def load_dataset(name: str, root: str | Path, **kwargs: object) -> Dataset:
    """Read a benchmark from disk.

    Args:
        name: Registry name, see ``agiqa datasets list``.
        root: Folder (or, for ``generic``, table file) the benchmark was unpacked to.
        **kwargs: Reader options, e.g. ``check_images=True`` to open every image header.

    Returns:
        The samples, pairs and every problem found. Raises ``FileNotFoundError`` or ``DatasetError`` when the
        files cannot be read at all (missing label file, missing column).
    """
    info = get_dataset(name)
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset root {root} does not exist; pass the folder {name!r} was unpacked to")
    unknown = sorted(set(kwargs) - set(info.options()))
    if unknown:
        raise TypeError(
            f"dataset {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options are {', '.join(info.options()) or 'none'}"
        )
    return info.reader(root, **kwargs)
