"""Which image of a bench folder belongs to which generator and prompt.

``ROOT`` holds one sub-folder per generator (its name is the generator's), searched recursively. An image maps to
a prompt id of the suite by its file name (extension dropped), tried in this order:

1. the whole name is an id: ``{id}.png`` (``005695-0057.png`` for an ImageReward id);
2. a number matching a numeric id with other zero padding: ``00012.jpg`` for id ``12`` (HPSv2's
   ``benchmark_imgs/{model}/{idx:05d}.jpg``);
3. the name without a last ``_N`` or ``-N``, for several samples per prompt: ``{id}_{seed}.png``, ``{id}-{k}.png``
   (then 1 and 2 again).

Or an explicit table (``--map``) with columns ``generator, image, prompt_id``; a relative ``image`` is looked up
under ``ROOT/<generator>/`` and then ``ROOT/``. Images that map to no id are left out and reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agiqa.data.files import IMAGE_EXTENSIONS, find_images, resolve_image
from agiqa.io import read_table

_SAMPLE_SUFFIX = re.compile(r"^(?P<id>.+?)[_-]\d+$")


@dataclass(frozen=True)
class BenchImage:
    """One generated image: its generator, file, prompt id and the name it is reported under."""

    generator: str
    file: Path
    prompt_id: str
    name: str


@dataclass
class BenchLayout:
    """The images of a bench and what could not be placed.

    Attributes:
        images: Placed images, by generator then file name.
        problems: One line per thing left out (unmatched files, unknown ids, stray files).
    """

    images: list[BenchImage] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def generators(self) -> list[str]:
        """Generators with at least one placed image, in order."""
        return list(dict.fromkeys(i.generator for i in self.images))


class IdMatcher:
    """Maps a file name (without extension) to a suite id (see module docstring)."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = set(ids)
        self.numeric: dict[int, str] = {}
        for i in self.ids:
            if i.isdigit():
                self.numeric.setdefault(int(i), i)

    def _direct(self, name: str) -> str | None:
        if name in self.ids:
            return name
        if name.isdigit():
            return self.numeric.get(int(name))
        return None

    def __call__(self, stem: str) -> str | None:
        found = self._direct(stem)
        if found is None:
            match = _SAMPLE_SUFFIX.match(stem)
            found = self._direct(match.group("id")) if match else None
        return found


def folder_layout(root: Path, ids: Iterable[str]) -> BenchLayout:
    """Images of every generator sub-folder of ``root``, mapped to ids by file name.

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: ``root`` has no generator sub-folder.
    """
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder; give a folder with one sub-folder per generator")
    match = IdMatcher(ids)
    layout = BenchLayout()
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{root}: no generator sub-folders; put each generator's images in ROOT/<generator>/")
    stray = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if stray:
        layout.problems.append(f"{len(stray)} images directly in {root} left out (not in a generator sub-folder)")
    for folder in folders:
        unmatched = []
        for file in find_images([folder]):
            prompt_id = match(file.stem)
            if prompt_id is None:
                unmatched.append(file.name)
                continue
            layout.images.append(BenchImage(folder.name, file, prompt_id, file.relative_to(root).as_posix()))
        if unmatched:
            examples = ", ".join(unmatched[:3]) + (" ..." if len(unmatched) > 3 else "")
            layout.problems.append(f"{folder.name}: {len(unmatched)} images match no prompt id ({examples})")
    return layout


def table_layout(root: Path, table: Path, ids: Iterable[str]) -> BenchLayout:
    """Images listed in a ``generator, image, prompt_id`` table.

    Raises:
        ValueError: A column is missing or a cell is empty (the message names the table and row).
    """
    frame = read_table(table)
    missing = [c for c in ("generator", "image", "prompt_id") if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: missing column(s) {missing}; a bench map needs generator, image, prompt_id")
    known = set(ids)
    layout = BenchLayout()
    unknown: list[str] = []
    for k, row in enumerate(frame[["generator", "image", "prompt_id"]].itertuples(index=False), start=2):
        generator, image, prompt_id = (str(x).strip() for x in row)
        if not generator or not image or not prompt_id:
            raise ValueError(f"{table}: row {k} has an empty generator, image or prompt_id cell")
        if prompt_id not in known:
            unknown.append(prompt_id)
            continue
        file = resolve_image(image, [root / generator, root])
        layout.images.append(BenchImage(generator, file, prompt_id, f"{generator}/{image}"))
    if unknown:
        layout.problems.append(f"{table}: {len(unknown)} rows name prompt ids not in the suite ({unknown[0]!r} ...)")
    layout.images.sort(key=lambda i: (i.generator, i.name))
    return layout
