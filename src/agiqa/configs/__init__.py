"""Training configs that ship with agiqa: the papers' recipes (``<name>.yaml``) and the CPU ones (``lite/<name>.yaml``).

A shipped config is named by its path here without ``.yaml``: ``lite/tsp-mgs``, ``lite/default``,
``tsp-mgs-clip-b32``. ``agiqa train NAME`` and ``agiqa protocol --method M`` (``lite/M``) find them by name, so an
installed agiqa trains outside a checkout.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path


def shipped_configs() -> dict[str, Path]:
    """``{name: path}`` of every shipped config, sorted by name."""
    root = Path(str(resources.files(__name__)))
    found = {p.relative_to(root).with_suffix("").as_posix(): p for p in root.rglob("*.yaml")}
    return dict(sorted(found.items()))


def find_config(name_or_path: str | Path) -> Path:
    """A config file: ``name_or_path`` when that file exists, else the shipped config of that name.

    Raises:
        FileNotFoundError: Neither a file nor a shipped name; the message lists the shipped names.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = str(name_or_path).removesuffix(".yaml")
    if name in shipped:
        return shipped[name]
    close = difflib.get_close_matches(name, shipped, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise FileNotFoundError(
        f"{name_or_path}: no such config file and no shipped config of that name.{hint} Shipped: {', '.join(shipped)}"
    )
