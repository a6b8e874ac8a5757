"""How to install an optional extra, said the same way everywhere (from a wheel and from a checkout)."""

from __future__ import annotations


def install_hint(extra: str) -> str:
    """``install the serve extra: pip install 'agiqa[serve]' (in a checkout: pip install -e '.[serve]')``."""
    return f"install the {extra} extra: pip install 'agiqa[{extra}]' (in a checkout: pip install -e '.[{extra}]')"
