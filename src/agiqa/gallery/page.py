"""The gallery page, one template for both uses: served by ``agiqa serve`` (assets linked from the server) and
written whole by ``agiqa report`` (assets and data inlined, so it opens from ``file://`` with no network).

The page is ``static/page.html`` + ``static/gallery.css`` + ``static/gallery.js``: plain HTML, CSS and JavaScript,
package data, no build step and nothing fetched from elsewhere.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

GALLERY_ASSETS = {"gallery.js": "text/javascript", "gallery.css": "text/css"}
"""Assets the served page loads, with their media types."""


def gallery_asset(name: str) -> str:
    """The text of a file of ``agiqa/gallery/static``."""
    return (resources.files("agiqa.gallery") / "static" / name).read_text(encoding="utf-8")


def _fill(style: str, data: str, script: str) -> str:
    page = gallery_asset("page.html")
    for marker, value in (("STYLE", style), ("DATA", data), ("SCRIPT", script)):
        page = page.replace(f"<!--AGIQA:{marker}-->", value)
    return page


def served_page(prefix: str = "page/") -> str:
    """The page as the server sends it: the stylesheet and the script linked at ``prefix``."""
    return _fill(
        f'<link rel="stylesheet" href="{prefix}gallery.css">', "", f'<script src="{prefix}gallery.js"></script>'
    )


def _script_json(data: Any) -> str:
    # JSON inside <script>: "<" escaped so that no "</script>" or "<!--" in the data can end the element.
    return json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def inline_page(data: dict[str, Any]) -> str:
    """The whole page in one string, with ``data`` (``model``, ``items``, ``title``) embedded as JSON."""
    return _fill(
        f"<style>\n{gallery_asset('gallery.css')}</style>",
        f'<script type="application/json" id="agiqa-data">{_script_json(data)}</script>',
        f"<script>\n{gallery_asset('gallery.js')}</script>",
    )
