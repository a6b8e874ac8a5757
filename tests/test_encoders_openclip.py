"""The optional ``openclip`` backend: a clean install hint without open_clip; the real path when present."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from agiqa.encoders import create_encoder


def test_missing_open_clip_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "open_clip", None)  # makes `import open_clip` fail even where installed
    with pytest.raises(ImportError, match=r"pip install 'agiqa\[openclip\]'"):
        create_encoder("openclip:ViT-B-32@/models/open_clip_pytorch_model.bin")


def test_importing_encoders_does_not_import_open_clip() -> None:
    code = "import sys, agiqa.encoders as e; print('openclip' in e.factory.ENCODERS, 'open_clip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]


def test_real_open_clip_model_shapes() -> None:
    open_clip = pytest.importorskip("open_clip", reason="open_clip is an optional extra (needs torchvision)")
    from agiqa.encoders.openclip import OpenCLIPEncoder

    model = open_clip.create_model("ViT-B-32")  # random weights: shapes and plumbing only
    enc = OpenCLIPEncoder(model, open_clip.get_tokenizer("ViT-B-32"), name="openclip:ViT-B-32@random")
    with torch.no_grad():
        img = enc.encode_image(torch.zeros(2, 3, 224, 224))
        txt = enc.encode_text(["a cat", "a dog"])
    assert img.tokens.shape == (2, 49, 768) and img.pooled.shape == (2, 512) and enc.image_grid == (7, 7)
    assert txt.pooled.shape == (2, 512) and txt.mask is not None
