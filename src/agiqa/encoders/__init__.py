"""Vision-language backbones behind one interface (see ``base.DualEncoder``)."""

from agiqa.encoders.base import DualEncoder, EncoderOutput

__all__ = ["DualEncoder", "EncoderOutput"]
