"""Feature cache: encode each image and each prompt once, reuse the result across epochs, splits and methods.

Two levels are cached, both correct for any method without knowing its internals:

1. The model's own ``image_features`` (per image and view) and ``text_features`` (per prompt): the contract
   boundary of ``QualityModel``, everything before ``forward_head``. A hit skips decoding and encoding.
2. Below it, the encoder's ``encode_image`` output per preprocessed view (``EncoderMemo``), keyed by the
   encoder fingerprint and the SHA-1 of the pixels. Methods whose ``image_features`` differ (MINT-IQA keeps
   the tokens only, TSP-MGS adds patches) still share the expensive part: the first method run on a dataset
   pays for the encoder, the next ones only decode and preprocess the images.

Namespaces and keys of level 1:

* **Image namespace** = encoder fingerprint (weights + preprocessing + projections) + the implementation of
  ``preprocess`` and ``image_features`` the model uses + a digest of their output on a fixed probe image.
  Methods that keep the base class's implementations (they differ only in ``forward_head``) share one cache;
  a method that overrides either (TSP-MGS's multi-crop views) gets its own, and method arguments that change
  the features (number of patches) change the probe digest while head-only arguments do not. A model may
  declare its ``feature_config`` instead of the probe.
* **Text namespace** = encoder fingerprint + ``text_features`` implementation + a digest of its output on a
  fixed probe prompt (phrase segmentation, prompt refinement and the like live in ``text_features``).
* **Item key** = SHA-1 of the image file's bytes (not its path) plus the view (``orig``, ``hflip+cc0.95``,
  a Stable Preference weak view ...), or SHA-1 of the prompt text.

Because the image tower's projection into the joint space is part of ``encode_image``, a cached run trains
the heads over a *fixed* projection (the encoder is entirely frozen in cached mode), unless the model keeps the
encoder's summaries and projects them in its head (TSP-MGS ``project_in_head``): then the projections train
too. Train with ``train.cache: off`` to tune encoder layers.

Storage: safetensors shards ``<root>/<namespace>/shard-*.safetensors``; tensor ``"<item key>/<feature>"``; an
``about.json`` per namespace says what it holds (``agiqa cache`` lists and clears them: ``agiqa.train.cache_admin``).
A shard is written whole and renamed into place. One that cannot be read (truncated) or that holds NaN or inf is
moved aside (``*.corrupt``, with a warning naming it) and its entries are computed again; features computed with
NaN or inf are refused with an error naming the image or prompt, so nothing is ever trained on them.
Floating features are stored as float16 and always returned after that round trip, so a run that filled the
cache and a run that read it see the same numbers. Root: ``$AGIQA_CACHE_DIR`` or ``~/.cache/agiqa/features``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from agiqa.data.images import load_image
from agiqa.encoders.base import DualEncoder, EncoderOutput
from agiqa.models.base import QualityModel
from agiqa.train.augment import ViewTransform

CACHE_ENV = "AGIQA_CACHE_DIR"
ENCODER_FIELDS = ("tokens", "pooled", "mask", "summary", "concepts")  # what EncoderMemo stores; part of its namespace
ABOUT = "about.json"


def default_cache_dir() -> Path:
    """``$AGIQA_CACHE_DIR`` when set, else ``~/.cache/agiqa/features``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "agiqa" / "features"


def content_hash(ref: str | Path | bytes) -> str:
    """SHA-1 of an image file's bytes (or of the bytes themselves)."""
    data = ref if isinstance(ref, bytes) else Path(ref).read_bytes()
    return hashlib.sha1(data).hexdigest()


def _impl(func: Callable[..., Any]) -> str:
    """Where a method is implemented: the class that defines it decides what the features are."""
    return f"{func.__module__}.{func.__qualname__}"


def _digest(parts: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tensor_digest(features: dict[str, torch.Tensor]) -> str:
    """Shapes + a few sums at 4 significant digits: stable across thread counts, sensitive to any real change."""
    digest = hashlib.sha1()
    for name in sorted(features):
        t = features[name].detach().cpu()
        digest.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        if t.is_floating_point():
            x = t.double().flatten()
            w = torch.linspace(-1.0, 1.0, x.numel(), dtype=torch.float64)
            digest.update(" ".join(f"{float(v):.4g}" for v in (x.sum(), x.abs().sum(), (x * w).sum())).encode())
        else:
            digest.update(t.numpy().tobytes())
    return digest.hexdigest()[:16]


def probe_image() -> Image.Image:
    """A fixed non-square test card (gradients + a block) whose features identify a feature pipeline."""
    y, x = np.mgrid[0:240, 0:320]
    pixels = np.stack([x * 255 // 319, y * 255 // 239, (x + y) % 256], axis=-1).astype(np.uint8)
    pixels[60:120, 200:280] = (250, 240, 20)
    return Image.fromarray(pixels)


PROBE_PROMPT = "a red cube on a wooden table, studio light, oil painting by an old master"


@torch.no_grad()
def _probe(model: QualityModel, kind: str) -> str:
    if model.feature_config is not None:
        return _digest({"feature_config": model.feature_config})
    was, threads = model.training, torch.get_num_threads()
    model.eval()
    torch.set_num_threads(1)  # summation order, hence the last digits, depends on the thread count
    try:
        if kind == "image":
            feats = model.image_features(model.preprocess(probe_image()).unsqueeze(0))
        else:
            feats = model.text_features([PROBE_PROMPT])
    finally:
        model.train(was)
        torch.set_num_threads(threads)
    return _tensor_digest(feats)


def image_namespace(model: QualityModel) -> str:
    """Cache namespace of ``model.image_features`` (see module docstring)."""
    parts: dict[str, Any] = {
        "encoder": model.encoder.fingerprint,
        "preprocess": _impl(type(model).preprocess),
        "image_features": _impl(type(model).image_features),
        "probe": _probe(model, "image"),
    }
    return "img-" + _digest(parts)


def text_namespace(model: QualityModel) -> str:
    """Cache namespace of ``model.text_features`` (see module docstring)."""
    parts = {
        "encoder": model.encoder.fingerprint,
        "text_features": _impl(type(model).text_features),
        "probe": _probe(model, "text"),
    }
    return "txt-" + _digest(parts)


class FeatureStore:
    """Cached feature dicts of one namespace, in safetensors shards.

    Args:
        root: Cache root (``default_cache_dir()`` when None).
        namespace: Sub-folder, from ``image_namespace`` / ``text_namespace``.
        dtype: Storage type of floating features.
        about: What the namespace holds, written once to ``about.json`` in it for ``agiqa cache`` (``kind``,
            ``encoder``, ``model``).
    """

    def __init__(
        self,
        root: str | Path | None,
        namespace: str,
        dtype: torch.dtype = torch.float16,
        about: dict[str, str] | None = None,
    ) -> None:
        self.folder = Path(root if root is not None else default_cache_dir()).expanduser() / namespace
        self.dtype = dtype
        self.about = about
        self.hits = 0
        self.misses = 0
        self._index: dict[str, tuple[Path, list[str]]] = {}
        self._scan()

    def _scan(self) -> None:
        if not self.folder.is_dir():
            return
        for shard in sorted(self.folder.glob("shard-*.safetensors")):
            try:
                with safe_open(str(shard), framework="pt") as fh:
                    names = list(fh.keys())
            except (SafetensorError, OSError) as err:
                self._set_aside(shard, f"unreadable ({err})")
                continue
            for name in names:
                key, _, feat = name.rpartition("/")
                self._index.setdefault(key, (shard, []))[1].append(feat)

    def _set_aside(self, shard: Path, why: str) -> None:
        """Move a damaged shard out of the cache (``*.corrupt``, kept for inspection); its entries get recomputed."""
        with contextlib.suppress(OSError):
            shard.replace(shard.with_suffix(".corrupt"))
        self._index = {k: v for k, v in self._index.items() if v[0] != shard}
        warnings.warn(
            f"feature cache: {shard} is {why}; moved to {shard.with_suffix('.corrupt')}, its entries will be "
            "computed again",
            stacklevel=3,
        )

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def get(self, keys: Sequence[str]) -> dict[str, dict[str, torch.Tensor]]:
        """Feature dicts of the keys that are cached (missing keys are left out)."""
        by_shard: dict[Path, list[str]] = {}
        for key in keys:
            if key in self._index:
                by_shard.setdefault(self._index[key][0], []).append(key)
        out: dict[str, dict[str, torch.Tensor]] = {}
        for shard, wanted in by_shard.items():
            try:
                with safe_open(str(shard), framework="pt") as fh:
                    found = {k: {f: self._read(fh, k, f) for f in self._index[k][1]} for k in wanted}
            except (SafetensorError, OSError) as err:
                self._set_aside(shard, f"unreadable ({err})")
                continue
            bad = [k for k, feats in found.items() if not all(_finite(t) for t in feats.values())]
            if bad:  # a shard is written whole, so one NaN means none of it can be trusted
                self._set_aside(shard, f"holding NaN or inf (entry {bad[0]})")
                continue
            out.update(found)
        return out

    def put(self, items: dict[str, dict[str, torch.Tensor]]) -> None:
        """Write feature dicts as one new shard (atomic rename, so readers never see half a file)."""
        if not items:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.about is not None and not (self.folder / ABOUT).is_file():
            (self.folder / ABOUT).write_text(json.dumps(self.about, indent=1))
        tensors = {f"{k}/{f}": self.store_form(t) for k, feats in items.items() for f, t in feats.items()}
        shard = self.folder / f"shard-{uuid.uuid4().hex}.safetensors"
        tmp = shard.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        tmp.replace(shard)
        for key, feats in items.items():
            self._index[key] = (shard, list(feats))

    def store_form(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor as stored: detached, contiguous, on CPU, floating types cast to the storage type."""
        tensor = tensor.detach().to("cpu").contiguous()
        return tensor.to(self.dtype) if tensor.is_floating_point() else tensor

    def _read(self, fh: Any, key: str, feature: str) -> torch.Tensor:
        return self._restore(fh.get_tensor(f"{key}/{feature}"))

    def _restore(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.float() if tensor.is_floating_point() else tensor

    def round_trip(self, tensor: torch.Tensor) -> torch.Tensor:
        """What ``get`` would return for ``tensor`` after ``put``."""
        return self._restore(self.store_form(tensor))


def _finite(tensor: torch.Tensor) -> bool:
    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())


def _check_finite(stored: dict[str, dict[str, torch.Tensor]], names: dict[str, str], what: str) -> None:
    """Refuse freshly computed features holding NaN or inf (they would train a NaN model), naming the input."""
    for key, feats in stored.items():
        bad = [f for f, t in feats.items() if not _finite(t)]
        if bad:
            raise ValueError(
                f"{what} {names[key]}: its features hold NaN or inf in {bad} (as computed, or beyond the float16 "
                "range of the cache); check that input"
            )


def _stack(rows: list[dict[str, torch.Tensor]], what: str) -> dict[str, torch.Tensor]:
    """Stack per-item features; items whose first axis differs (text tokens) are zero-padded (masks: False)."""
    out = {}
    for name in rows[0]:
        shapes = {tuple(r[name].shape) for r in rows}
        if len({s[1:] for s in shapes}) > 1 or any(len(s) == 0 for s in shapes) and len(shapes) > 1:
            raise ValueError(
                f"{what}: feature {name!r} has different shapes across items {sorted(shapes)[:3]}; the feature "
                "cache needs features that differ at most in their first axis (pad them in the method)"
            )
        longest = max(s[0] for s in shapes) if shapes and len(next(iter(shapes))) else 0
        out[name] = torch.stack([_pad_first(r[name], longest) for r in rows])
    return out


def _pad_first(tensor: torch.Tensor, length: int) -> torch.Tensor:
    if tensor.dim() == 0 or tensor.shape[0] == length:
        return tensor
    pad = torch.zeros((length - tensor.shape[0], *tensor.shape[1:]), dtype=tensor.dtype)
    return torch.cat([tensor, pad])


def _describe(ref: str | bytes) -> str:
    return f"<{len(ref)} bytes>" if isinstance(ref, bytes) else str(ref)


def encoder_namespace(encoder: DualEncoder) -> str:
    """Cache namespace of the encoder's own outputs (``encode_image``), shared by every method."""
    return "enc-" + _digest({"encoder": encoder.fingerprint, "fields": ENCODER_FIELDS})


class EncoderMemo:
    """Inside ``with EncoderMemo(encoder, root):`` ``encoder.encode_image`` reads its outputs from the cache.

    Rows are keyed by the SHA-1 of the preprocessed pixels, so every method whose ``image_features`` feeds the
    same views to the encoder (the plain resized image, a TSP-MGS patch) shares one entry, whatever it does
    with the ``EncoderOutput`` afterwards.
    """

    def __init__(self, encoder: DualEncoder, root: str | Path | None) -> None:
        self.encoder = encoder
        about = {"kind": "encoder outputs", "encoder": encoder.name}
        self.store = FeatureStore(root, encoder_namespace(encoder), about=about)

    def __enter__(self) -> EncoderMemo:
        self._original = self.encoder.encode_image
        self.encoder.encode_image = self._encode  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.encoder.encode_image

    def _encode(self, pixel_values: torch.Tensor) -> EncoderOutput:
        rows = pixel_values.detach().to("cpu", torch.float32).contiguous()
        keys = [hashlib.sha1(r.numpy().tobytes()).hexdigest() for r in rows]
        found = self.store.get(list(dict.fromkeys(keys)))
        todo = [i for i, k in enumerate(dict.fromkeys(keys)) if k not in found]
        unique = list(dict.fromkeys(keys))
        self.store.hits += len(unique) - len(todo)
        self.store.misses += len(todo)
        if todo:
            first = {k: keys.index(k) for k in unique}
            out = self._original(pixel_values[[first[unique[i]] for i in todo]])
            new = {}
            for j, i in enumerate(todo):
                item = {"tokens": out.tokens[j], "pooled": out.pooled[j]}
                if out.mask is not None:
                    item["mask"] = out.mask[j]
                if out.summary is not None:
                    item["summary"] = out.summary[j]
                if out.concepts is not None:
                    item["concepts"] = out.concepts[j]
                new[unique[i]] = item
            self.store.put(new)
            found.update({k: {n: self.store.round_trip(t) for n, t in v.items()} for k, v in new.items()})
        stacked = _stack([found[k] for k in keys], "encoder outputs")
        device = pixel_values.device
        return EncoderOutput(
            tokens=stacked["tokens"].to(device),
            pooled=stacked["pooled"].to(device),
            mask=stacked["mask"].to(device) if "mask" in stacked else None,
            summary=stacked["summary"].to(device) if "summary" in stacked else None,
            concepts=stacked["concepts"].to(device) if "concepts" in stacked else None,
        )


@torch.no_grad()
def cached_image_features(
    model: QualityModel,
    images: Sequence[str | bytes],
    cache_dir: str | Path | None = None,
    view: str = "orig",
    transform: ViewTransform | None = None,
    batch_size: int = 32,
    hashes: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    on_todo: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, torch.Tensor], FeatureStore]:
    """``model.image_features`` of every image (one view), stacked in order, computing only cache misses.

    Args:
        model: The model whose ``preprocess`` + ``image_features`` are cached.
        images: Paths or encoded bytes.
        cache_dir: Cache root (default ``default_cache_dir()``).
        view: Name of the view; part of the key, so it must identify ``transform`` fully.
        transform: ``transform(image, content_hash)`` applied before ``model.preprocess`` (None = original).
        batch_size: Images per encoder call.
        hashes: Content hashes of ``images`` when already known.
        progress: Called with the number of images encoded after each batch.
        on_todo: Called once, before encoding, with the number of images to encode and the number found cached.

    Returns:
        ``{feature: (N, ...) tensor}`` and the store (its ``hits``/``misses`` say what was computed).
    """
    about = {"kind": "image features", "encoder": model.encoder.name, "model": type(model).__name__}
    store = FeatureStore(cache_dir, image_namespace(model), about=about)
    hashes = list(hashes) if hashes is not None else [content_hash(ref) for ref in images]
    keys = [f"{h}@{view}" for h in hashes]
    found = store.get(list(dict.fromkeys(keys)))
    todo = [i for i, k in enumerate(keys) if k not in found]
    store.hits += len(keys) - len(todo)
    store.misses += len(todo)
    if on_todo is not None:
        on_todo(len(todo), len(keys) - len(todo))
    was_training = model.training
    model.eval()
    memo = EncoderMemo(model.encoder, cache_dir) if todo else None
    for start in range(0, len(todo), batch_size):
        chunk = [i for i in todo[start : start + batch_size] if keys[i] not in found]
        if not chunk:
            continue
        pixels = []
        for i in chunk:
            image = load_image(images[i])
            pixels.append(model.preprocess(transform(image, hashes[i]) if transform else image))
        with memo:  # type: ignore[union-attr]
            feats = model.image_features(torch.stack(pixels).to(next(model.parameters()).device))
        new = {keys[i]: {n: t[j] for n, t in feats.items()} for j, i in enumerate(chunk)}
        stored = {k: {n: store.round_trip(t) for n, t in v.items()} for k, v in new.items()}
        _check_finite(stored, {keys[i]: _describe(images[i]) for i in chunk}, "image")
        store.put(new)
        found.update(stored)
        if progress is not None:
            progress(len(chunk))
    model.train(was_training)
    return _stack([found[k] for k in keys], f"image features ({view})"), store


@torch.no_grad()
def cached_text_features(
    model: QualityModel,
    prompts: Sequence[str],
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    on_todo: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, torch.Tensor], FeatureStore]:
    """``model.text_features`` of every prompt, stacked in order, computing only cache misses.

    ``progress`` and ``on_todo`` are called as by ``cached_image_features`` (counting unique prompts).
    """
    about = {"kind": "text features", "encoder": model.encoder.name, "model": type(model).__name__}
    store = FeatureStore(cache_dir, text_namespace(model), about=about)
    keys = [hashlib.sha1(p.encode("utf-8")).hexdigest() for p in prompts]
    found = store.get(list(dict.fromkeys(keys)))
    todo = list(dict.fromkeys(k for k in keys if k not in found))
    first = {k: prompts[keys.index(k)] for k in todo}
    store.hits += len(keys) - sum(k not in found for k in keys)
    store.misses += len(todo)
    if on_todo is not None:
        on_todo(len(todo), len(set(keys)) - len(todo))
    was_training = model.training
    model.eval()
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        feats = model.text_features([first[k] for k in chunk])
        new = {k: {n: t[j] for n, t in feats.items()} for j, k in enumerate(chunk)}
        stored = {k: {n: store.round_trip(t) for n, t in v.items()} for k, v in new.items()}
        _check_finite(stored, {k: repr(first[k][:80]) for k in chunk}, "prompt")
        store.put(new)
        found.update(stored)
        if progress is not None:
            progress(len(chunk))
    model.train(was_training)
    return _stack([found[k] for k in keys], "text features"), store
