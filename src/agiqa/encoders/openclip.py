"""``openclip:ARCH@WEIGHTS``: an open_clip ViT CLIP model (optional extra: ``pip install 'agiqa[openclip]'``, or
``pip install -e '.[openclip]'`` in a checkout).

open_clip needs torchvision, so it stays out of the default install and is imported only when this backend
is built. ``WEIGHTS`` is a local ``.safetensors`` checkpoint file (pickled ``.bin`` files are refused) or,
only when downloads are allowed (``AGIQA_ALLOW_DOWNLOAD=1``), an open_clip pretrained tag such as
``laion2b_s34b_b79k``. Checkpoints published in Hugging Face format load faster through ``clip:``.

Token and pooled conventions follow the ``clip`` backend: image tokens are the patch tokens (no class
token) after the final norm, text tokens the final-norm states; pooled = open_clip's ``encode_image`` /
``encode_text``. Preprocessing: resize + centre crop to the model's size with its mean/std, done with PIL.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from agiqa.encoders._freeze import LayerGroupEncoder
from agiqa.encoders.base import EncoderOutput
from agiqa.encoders.factory import register_encoder
from agiqa.encoders.preprocess import ImageTransform
from agiqa.encoders.pretrained import download_allowed
from agiqa.extras import install_hint

INSTALL_HINT = f"the openclip encoder needs the optional open_clip package; {install_hint('openclip')}"


class OpenCLIPEncoder(LayerGroupEncoder):
    """An ``open_clip.CLIP`` ViT model behind the ``DualEncoder`` interface (see module docstring).

    Args:
        model: The open_clip model (a ``VisionTransformer`` image tower and the built-in text transformer).
        tokenizer: ``open_clip.get_tokenizer(arch)``.
        name: The spec it was built from.
    """

    def __init__(self, model: nn.Module, tokenizer, name: str) -> None:
        super().__init__()
        if not hasattr(model.visual, "output_tokens") or not hasattr(model, "token_embedding"):
            raise ValueError(f"{name}: only ViT open_clip models with the built-in text transformer are supported")
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        size = model.visual.image_size
        self.image_size = size[0] if isinstance(size, tuple | list) else int(size)
        grid = model.visual.grid_size
        self.image_grid = (int(grid[0]), int(grid[1]))
        cfg = model.visual.preprocess_cfg
        self.transform = ImageTransform(size=self.image_size, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
        self.embed_dim = int(model.text_projection.shape[1])
        self.image_token_dim = int(model.visual.transformer.width)
        self.text_token_dim = int(model.transformer.width)
        self.max_text_tokens = int(model.context_length)
        model.visual.output_tokens = True
        self.eval()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Resize + centre crop + the model's normalisation."""
        return self.transform(image)

    def encode_image(self, pixel_values: torch.Tensor) -> EncoderOutput:
        """Patch tokens and the projected class embedding."""
        pooled, tokens = self.model.visual(pixel_values)
        return EncoderOutput(tokens=tokens, pooled=pooled)

    def encode_text(self, texts: Sequence[str]) -> EncoderOutput:
        """Final-norm token states and the projected end-of-text embedding (open_clip truncates at 77)."""
        ids = self.tokenizer(list(texts)).to(self.model.token_embedding.weight.device)
        x = self.model.token_embedding(ids) + self.model.positional_embedding
        x = self.model.ln_final(self.model.transformer(x, attn_mask=self.model.attn_mask))
        pooled = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)] @ self.model.text_projection
        return EncoderOutput(tokens=x, pooled=pooled, mask=ids != 0)

    def layer_groups(self, tower: str) -> list[list[nn.Module]]:
        """Residual blocks of each transformer; the final norm joins the last group."""
        if tower == "image":
            blocks, last = self.model.visual.transformer.resblocks, [self.model.visual.ln_post]
        else:
            blocks, last = self.model.transformer.resblocks, [self.model.ln_final]
        groups: list[list[nn.Module]] = [[block] for block in blocks]
        groups[-1] = groups[-1] + last
        return groups


@register_encoder("openclip")
def build_openclip(source: str | None = None, allow_download: bool | None = None) -> OpenCLIPEncoder:
    """Builder for ``openclip:ARCH@WEIGHTS`` (see module docstring).

    Args:
        source: ``ARCH@WEIGHTS``, e.g. ``ViT-B-32@/models/open_clip_model.safetensors``.
        allow_download: Allow a pretrained tag to be downloaded (default: env ``AGIQA_ALLOW_DOWNLOAD``).
    """
    try:
        import open_clip
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    arch, sep, weights = (source or "").partition("@")
    if not arch or not sep or not weights:
        raise ValueError(f"openclip spec 'openclip:{source}' must be 'openclip:ARCH@WEIGHTS_FILE_OR_TAG'")
    if not Path(weights).expanduser().is_file() and not download_allowed(allow_download):
        raise FileNotFoundError(
            f"openclip weights {weights!r} are not a file on this machine and downloads are off; download the "
            f"checkpoint file and give its path (openclip:{arch}@/path/to/open_clip_model.safetensors), or set "
            "AGIQA_ALLOW_DOWNLOAD=1 to let open_clip fetch a pretrained tag"
        )
    local = Path(weights).expanduser()
    if local.is_file() and local.suffix != ".safetensors":
        raise ValueError(
            f"openclip weights {weights!r}: agiqa loads safetensors only and never unpickles a .bin/.pt file; "
            "convert it once with safetensors.torch.save_file(torch.load(path, weights_only=True), "
            "'open_clip_model.safetensors') on a machine where you trust the file"
        )
    model = open_clip.create_model(arch, pretrained=str(local))
    return OpenCLIPEncoder(model, open_clip.get_tokenizer(arch), name=f"openclip:{source}")
