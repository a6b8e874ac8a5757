"""README's code blocks, as the README test and ``.ci/run`` read them (standard library only).

A fenced block is run when its language is ``bash`` or ``python``, unless the line before it is an HTML comment
``<!-- not-run: REASON -->``. ``python3 tests/_readme.py SECTION N`` prints the N-th (from 0) runnable-language
block under the ``## SECTION`` heading, which is how ``.ci/run`` runs the quickstart verbatim.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
LANGUAGES = ("bash", "python")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block.

    Attributes:
        line: 1-based line of its opening fence.
        section: The ``##`` heading it is under.
        language: What follows the opening fence (``bash``, ``python``, ``text`` ...).
        code: Its lines.
        not_run: The reason of a ``<!-- not-run: ... -->`` marker on the line before it, else None.
    """

    line: int
    section: str
    language: str
    code: str
    not_run: str | None


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of README (or of ``text``), in order."""
    lines = (README.read_text() if text is None else text).splitlines()
    out, section, i = [], "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = NOT_RUN.match(before)
            code = "\n".join(lines[i + 1 : end]) + "\n"
            out.append(Block(i + 1, section, line[3:].strip(), code, marker["reason"] if marker else None))
            i = end
        i += 1
    return out


def section_block(section: str, index: int) -> Block:
    """The ``index``-th bash or python block under ``## section``."""
    found = [b for b in blocks() if b.section == section and b.language in LANGUAGES]
    return found[index]


if __name__ == "__main__":
    print(section_block(sys.argv[1], int(sys.argv[2])).code, end="")
