"""``create_encoder(spec)``: one factory for every backend.

A spec is ``backend`` or ``backend:source`` where source is a hub id or a local folder, e.g. ``lite``,
``clip:openai/clip-vit-base-patch32``, ``clip:/models/my-clip``, ``blip2:/models/blip2``.
Backends register a builder ``(source: str | None, **kwargs) -> DualEncoder`` with ``@register_encoder``.
"""

from __future__ import annotations

from collections.abc import Callable

from agiqa._registry import Registry
from agiqa.encoders.base import DualEncoder

EncoderBuilder = Callable[..., DualEncoder]
ENCODERS: Registry[EncoderBuilder] = Registry("encoder backend")
register_encoder = ENCODERS.register


def parse_encoder_spec(spec: str) -> tuple[str, str | None]:
    """Split ``backend:source`` into its parts (source None when absent)."""
    if not spec or not spec.strip():
        raise ValueError("encoder spec is empty; give e.g. 'lite' or 'clip:openai/clip-vit-base-patch32'")
    backend, sep, source = spec.partition(":")
    return backend.strip(), (source.strip() or None) if sep else None


def create_encoder(spec: str, **kwargs: object) -> DualEncoder:
    """Build the encoder named by ``spec`` (see module docstring)."""
    backend, source = parse_encoder_spec(spec)
    return ENCODERS.get(backend)(source, **kwargs)
