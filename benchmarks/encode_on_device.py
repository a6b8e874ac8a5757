"""Fill the feature cache of a model's ``image_features`` on a GPU machine (benchmark helper).

TSP-MGS encodes 1 + 5 views of every image, which takes hours on two shared CPU cores and seconds on a GPU.
This script runs where only the image files and the image tower travel: it rebuilds the lite encoder's image
side (EfficientNet-Lite0 + the seeded projections, no text tower), checks that its fingerprint is the one the
cache namespace was made with, and writes one safetensors shard of ``{content_hash}@{view}`` entries that
``agiqa.train.cache.FeatureStore`` reads once copied into ``<cache>/<namespace>/``.

    python benchmarks/encode_on_device.py --images DIR --out OUT --namespace img-... --fingerprint lite@224/proj-...
        [--weak-views 3] [--robust-list names.txt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn


def image_only_lite(**kwargs: object) -> nn.Module:
    """``LiteEncoder`` whose text tower is a tiny random stand-in (the MiniLM weights stay behind).

    Everything on the image side, including the seeded projections, is built by ``LiteEncoder`` itself, so
    the fingerprint (checked in ``main``) matches the one the cache namespace was made with.
    """
    from transformers import BertConfig, BertModel

    from agiqa.encoders import lite

    def stub_minilm() -> tuple[nn.Module, None]:
        config = BertConfig(
            hidden_size=384, num_hidden_layers=1, num_attention_heads=12, intermediate_size=32, vocab_size=8
        )
        return BertModel(config, add_pooling_layer=False), None

    real, lite._load_minilm = lite._load_minilm, stub_minilm
    try:
        return lite.LiteEncoder(**kwargs)
    finally:
        lite._load_minilm = real


def main() -> None:
    from agiqa.data.images import load_image
    from agiqa.models.card import ModelCard
    from agiqa.models.tsp_mgs import TSPMGS
    from agiqa.train.augment import hflip_center_crop, seeded_weak_view
    from agiqa.train.cache import FeatureStore, content_hash

    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--fingerprint", required=True)
    parser.add_argument("--card", default="src/agiqa/model_configs/tsp-mgs-lite.yaml")
    parser.add_argument("--weak-views", type=int, default=3)
    parser.add_argument("--robust-list", type=Path)
    parser.add_argument("--workers", type=int, default=14)
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    encoder = image_only_lite()
    if encoder.fingerprint != args.fingerprint:
        raise SystemExit(f"fingerprint {encoder.fingerprint} != {args.fingerprint}: the lite encoder differs")
    card = ModelCard.from_yaml(args.card)
    model = TSPMGS(encoder, card.dimensions, **{k: v for k, v in card.method_args.items()}).eval()
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    robust = set(args.robust_list.read_text().split()) if args.robust_list else set()
    jobs = [(p, "orig", None) for p in files]
    jobs += [
        (p, f"weak{i}-s0-a0.85-1.0", seeded_weak_view(i, (0.85, 1.0), 0)) for p in files for i in range(args.weak_views)
    ]
    jobs += [
        (p, f"hflip+cc{r:.2f}", hflip_center_crop(r))
        for p in files
        if p.name in robust
        for r in (0.97, 0.95, 0.93, 0.9)
    ]

    class Views(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(jobs)

        def __getitem__(self, i: int) -> tuple[str, torch.Tensor]:
            path, view, transform = jobs[i]
            h = content_hash(str(path))
            image = load_image(str(path))
            return f"{h}@{view}", model.preprocess(transform(image, h) if transform else image)

    loader = torch.utils.data.DataLoader(Views(), batch_size=128, num_workers=args.workers)
    model.to(device)
    store = FeatureStore(args.out, args.namespace)
    items, start = {}, time.time()
    with torch.no_grad():
        for keys, pixels in loader:
            feats = model.image_features(pixels.to(device))
            for j, key in enumerate(keys):
                items[key] = {n: t[j].float().cpu() for n, t in feats.items()}
    store.put(items)
    print(f"{len(items)} entries ({len(files)} images) in {time.time() - start:.1f} s on {device}")


if __name__ == "__main__":
    main()
