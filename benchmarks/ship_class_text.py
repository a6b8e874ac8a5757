"""Writes ``src/agiqa/encoders/imagenet_class_text.safetensors``: MiniLM summaries of the 1,000 ImageNet class prompts.

The lite encoder with ``imagenet_bridge`` reads them from that file when its key (the prompts and a digest of the
installed MiniLM weights) matches, instead of embedding the prompts at every load. Rerun after a change of the
prompts or of the MiniLM weights package: ``python benchmarks/ship_class_text.py``.
"""

from __future__ import annotations

import torch

from agiqa.encoders.class_text import SHIPPED, file_bytes, summaries_key
from agiqa.encoders.lite import LiteEncoder, imagenet_class_prompts
from agiqa.io import atomic_write_bytes


def main() -> None:
    encoder = LiteEncoder()  # without the bridge: nothing is read from the file being written
    prompts = imagenet_class_prompts()
    with torch.no_grad():
        summaries = encoder.encode_text(prompts).summary
    atomic_write_bytes(SHIPPED, file_bytes(summaries, summaries_key(prompts, encoder.text_weights_digest())))
    print(f"wrote {SHIPPED} ({tuple(summaries.shape)})")


if __name__ == "__main__":
    main()
