"""Vision-language backbones behind one interface (see ``base.DualEncoder``).

Importing this package registers every backend (``lite``, ``clip``, ``blip2``, ``openclip``); heavy or
optional dependencies (open_clip) are imported only when their backend is built.
"""

from agiqa.encoders import blip2, clip, lite, openclip  # noqa: F401  (register the backends)
from agiqa.encoders.base import DualEncoder, EncoderOutput
from agiqa.encoders.factory import create_encoder, register_encoder

__all__ = ["DualEncoder", "EncoderOutput", "create_encoder", "register_encoder"]
