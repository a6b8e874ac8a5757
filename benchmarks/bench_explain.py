"""Explanation benchmarks: the cost of a structured explanation, and MINT-IQA's VQA accuracy table.

    python benchmarks/bench_explain.py cost [--model agiqa-lite] [--n 8]
    python benchmarks/bench_explain.py vqa  [--steps 300] [--eval-images 160] [--budget-min 25]

``cost`` times ``agiqa.explain.explain`` (levels + phrases + 3x3 regions, no files) on real AGIQA-3K images on the
CPU, after one warm-up, and writes ``benchmarks/results/explain_cost.{json,md}``.

``vqa`` reproduces MINT-IQA's explanation pipeline at CPU scale on the shared AGIQA-3K subset, split 0 of the
committed grouped splits (``src/agiqa/splits/agiqa3k.json``, prompts never on both sides):

1. stage 1, the scoring branch: ``mint-iqa-lite`` trained with ``agiqa.train`` (L1 on quality + alignment MOS,
   encoder frozen, features cached) unless ``--scoring`` names a trained model folder;
2. the frozen inputs of the instruction branch (image tokens, scoring queries) computed once per image;
3. question-answer pairs (Fig. 5) from the training labels, levels = quintiles of the training MOS;
4. stage 2, instruction tuning of the branch over SmolLM2-135M-Instruct (frozen), twice from the same
   initialisation: with the zero-initialised connection and without it (Table XV), each stopped at ``--steps``
   or ``--budget-min`` minutes, whichever comes first;
5. VQA accuracy (eq. 6-10) on held-out images for the quality and the alignment (correspondence) level
   questions, against the random-choice baseline (1/5) and the majority-level baseline.

Writes ``benchmarks/results/explain_vqa.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from agiqa.data.splits import shipped_splits

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SPLITS = shipped_splits("agiqa3k")
DATA = Path(os.environ.get("AGIQA_SHARED_DATA", ROOT.parent / "shared" / "data")) / "agiqa3k"


def _machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cores_visible": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
    }


def run_cost(args: argparse.Namespace) -> dict:
    """Seconds per structured explanation with the given model on the CPU."""
    from agiqa.api import load
    from agiqa.data import load_dataset
    from agiqa.explain import explain

    data = load_dataset("agiqa3k", DATA)
    samples = data.samples[:: max(1, len(data.samples) // (args.n + 1))][: args.n + 1]
    t0 = time.perf_counter()
    scorer = load(args.model)
    load_s = time.perf_counter() - t0
    explain(scorer.model, samples[0].image, samples[0].prompt)  # warm-up
    times, phrases = [], []
    for s in samples[1:]:
        t0 = time.perf_counter()
        exp = explain(scorer.model, s.image, s.prompt)
        times.append(time.perf_counter() - t0)
        phrases.append(len(exp.phrases))
    t0 = time.perf_counter()
    for s in samples[1:]:
        scorer.score([s.image], s.prompt)
    score_s = (time.perf_counter() - t0) / len(samples[1:])
    result = {
        "model": args.model,
        "images": len(times),
        "grid": 3,
        "phrases_mean": statistics.mean(phrases),
        "seconds_per_explanation_median": statistics.median(times),
        "seconds_per_explanation_mean": statistics.mean(times),
        "seconds_per_plain_score": score_s,
        "model_load_s": load_s,
        "machine": _machine(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "explain_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "explain_cost.md").write_text(
        "# Cost of a structured explanation (CPU)\n\n"
        f"`python benchmarks/bench_explain.py cost --model {args.model} --n {args.n}` on {len(times)} AGIQA-3K images "
        f"({result['phrases_mean']:.1f} phrases on average, 3x3 region grid), torch threads "
        f"{torch.get_num_threads()}, load average {result['machine']['load_avg_1min']:.1f} "
        "(shared machine).\n\n"
        "| model | seconds / explanation (median) | mean | seconds / plain score | model load (s) |\n"
        "|---|---|---|---|---|\n"
        f"| {args.model} | {result['seconds_per_explanation_median']:.3f} "
        f"| {result['seconds_per_explanation_mean']:.3f} "
        f"| {score_s:.3f} | {load_s:.1f} |\n"
    )
    return result


def _scoring_model(args: argparse.Namespace, work: Path):
    """Stage 1: the trained MINT-IQA scoring branch (trained here when ``--scoring`` is not given)."""
    from agiqa.models.registry import create_model
    from agiqa.train.config import TrainConfig
    from agiqa.train.loop import train

    if args.scoring:
        return create_model(args.scoring), {"scoring": args.scoring, "folder": args.scoring}
    folder = work / "mint-iqa-lite-stage1"
    if not (folder / "model.safetensors").is_file():
        config = TrainConfig.from_dict(
            {
                "name": "mint-iqa-lite-stage1",
                "model": "mint-iqa-lite",
                "data": {"dataset": "agiqa3k", "root": str(DATA), "splits": str(SPLITS), "split_index": 0},
                "train": {"loss": "l1", "epochs": args.stage1_epochs, "batch_size": 32, "lr": 1e-3, "progress": False},
            }
        )
        result = train(config, out_dir=folder)
        info = {"stage1_seconds": result.seconds, "stage1_best_val_srcc": result.best_val, "stage1_steps": result.steps}
        (work / "stage1.json").write_text(json.dumps(info, indent=2))
    info = json.loads((work / "stage1.json").read_text()) if (work / "stage1.json").is_file() else {}
    return create_model(str(folder)), {
        "scoring": f"mint-iqa-lite trained on split 0 ({folder})",
        "folder": str(folder),
        **info,
    }


@torch.no_grad()
def _branch_inputs(scoring, samples):
    from agiqa.explain.instruct.tuning import BranchInputs
    from agiqa.train.cache import cached_image_features, cached_text_features

    img, _ = cached_image_features(scoring, [s.image for s in samples])
    txt, _ = cached_text_features(scoring, [s.prompt for s in samples])
    queries = []
    for start in range(0, len(samples), 64):
        part = slice(start, start + 64)
        feats = {"image_tokens": img["image_tokens"][part].float(), "text_tokens": txt["text_tokens"][part].float()}
        queries.append(scoring.queries({**feats, "text_mask": txt["text_mask"][part]}))
    return BranchInputs([s.image_id for s in samples], img["image_tokens"].half(), torch.cat(queries).half())


def _feedback(scoring, branch, inputs, train_samples, test_samples, dims, args) -> dict:
    """Table XIII "+ Reward": regressors over [scoring ; instruction-aware] representations, SRCC on the test side."""
    from agiqa.eval.metrics import plcc, srcc
    from agiqa.explain.instruct.feedback import FeedbackRegressors, feedback_inputs, fit_feedback

    t0 = time.perf_counter()
    train_ids, test_ids = [s.image_id for s in train_samples], [s.image_id for s in test_samples]
    q_train, i_train = feedback_inputs(branch, inputs, train_ids, dims)
    q_test, i_test = feedback_inputs(branch, inputs, test_ids, dims)
    targets = {d: torch.tensor([s.labels[d] for s in train_samples], dtype=torch.float32) for d in dims}
    truth = {d: [s.labels[d] for s in test_samples] for d in dims}
    model = FeedbackRegressors(scoring.regressors, i_train[dims[0]].shape[-1], dims)
    with torch.no_grad():
        before = {d: v.numpy() for d, v in scoring.regressors.eval()(q_test).items()}
        start = {d: v.numpy() for d, v in model.eval()(q_test, i_test).items()}
    losses = fit_feedback(model, q_train, i_train, targets, epochs=args.feedback_epochs, seed=args.seed)
    with torch.no_grad():
        after = {d: v.numpy() for d, v in model(q_test, i_test).items()}
    return {
        "test_images": len(test_ids),
        "epochs": args.feedback_epochs,
        "seconds": time.perf_counter() - t0,
        "start_equals_stage1": all(abs(before[d] - start[d]).max() < 1e-4 for d in dims),
        "stage1": {
            d: {"srcc": float(srcc(before[d], truth[d])), "plcc": float(plcc(before[d], truth[d]))} for d in dims
        },
        "feedback": {
            d: {"srcc": float(srcc(after[d], truth[d])), "plcc": float(plcc(after[d], truth[d]))} for d in dims
        },
        "loss_curve": losses,
    }


def run_vqa(args: argparse.Namespace) -> dict:
    """Stage 1 + stage 2 with and without the zero-initialised connection, VQA accuracy on held-out images."""
    from agiqa.data import load_dataset
    from agiqa.data.splits import load_splits
    from agiqa.explain.instruct.answer import DEFAULT_QFORMER
    from agiqa.explain.instruct.branch import AgiqaInstructionQFormer, InstructionBranch
    from agiqa.explain.instruct.qa import build_qa, fit_level_scales
    from agiqa.explain.instruct.tuning import ask_levels, tune_branch
    from agiqa.explain.instruct.vqa import answered_rate, majority_baseline, random_baseline, vqa_accuracy
    from agiqa.models.layers.qformer import QFormer
    from agiqa.models.llm import load_smollm2

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir).expanduser()
    work.mkdir(parents=True, exist_ok=True)
    data = load_dataset("agiqa3k", DATA)
    train_set, test_set = load_splits(SPLITS, data)[0].apply(data)
    t0 = time.perf_counter()
    scoring, stage1 = _scoring_model(args, work)
    inputs = _branch_inputs(scoring, train_set.samples + test_set.samples)
    features_s = time.perf_counter() - t0
    print(f"stage 1 + features: {features_s:.0f} s", flush=True)

    dims = ["quality", "alignment"]
    scales = fit_level_scales(train_set.samples, dims)
    pairs = [p for p in build_qa(train_set.samples, scales, scores=False) if p.kind in args.kinds.split(",")]
    step = max(1, len(test_set.samples) // args.eval_images)
    held_out = test_set.samples[::step][: args.eval_images]
    truths = {s.image_id: {d: scales[d].level(s.labels[d]) for d in dims} for s in held_out}

    t0 = time.perf_counter()
    llm = load_smollm2()
    llm_load_s = time.perf_counter() - t0
    qformer_args = {**DEFAULT_QFORMER, "num_queries": args.queries}
    torch.manual_seed(args.seed)
    qformer = QFormer(scoring.encoder.image_token_dim, scoring.encoder.text_token_dim, **qformer_args)
    with_conn = InstructionBranch(
        AgiqaInstructionQFormer(qformer, scoring.encoder.encode_text), llm, scoring.qformer.hidden_size
    )
    init = {k: v.clone() for k, v in with_conn.state_dict().items() if not k.startswith("connection.")}

    variants = {}
    for name in ("with", "without"):
        if name == "with":
            branch = with_conn
        else:
            torch.manual_seed(args.seed)
            qf = QFormer(scoring.encoder.image_token_dim, scoring.encoder.text_token_dim, **qformer_args)
            branch = InstructionBranch(AgiqaInstructionQFormer(qf, scoring.encoder.encode_text), llm, None)
            branch.load_state_dict(init, strict=True)
        log = tune_branch(
            branch,
            pairs,
            inputs,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            time_budget_s=args.budget_min * 60,
            log=lambda line, n=name: print(f"[{n}] {line}", flush=True),
        )
        t0 = time.perf_counter()
        records = ask_levels(branch, inputs, truths, max_new_tokens=12)
        eval_s = time.perf_counter() - t0
        acc = vqa_accuracy(records)
        variants[name] = {
            "steps": log.steps,
            "train_seconds": log.seconds,
            "seconds_per_step": log.seconds / max(1, log.steps),
            "loss_curve": log.losses,
            "vqa_acc": acc,
            "answered": answered_rate(records),
            "eval_seconds": eval_s,
            "examples": [vars(r) for r in records[:: max(1, len(records) // 6)]][:6],
        }
        branch.save(
            work / f"branch-{name}",
            {"scoring": stage1["folder"], "connection": name == "with", "llm": "smollm2", "qformer": qformer_args},
        )
        print(f"[{name}] {acc}", flush=True)
        if name == "with":
            feedback = _feedback(scoring, branch, inputs, train_set.samples, test_set.samples, dims, args)
            print(f"[feedback] {feedback}", flush=True)

    majority = {
        q: majority_baseline([scales[d].level(s.labels[d]) for s in train_set.samples], [truths[i][d] for i in truths])
        for q, d in (("quality", "quality"), ("correspondence", "alignment"))
    }
    result = {
        "dataset": "agiqa3k (shared subset), split 0 of src/agiqa/splits/agiqa3k.json",
        "train_images": len(train_set.samples),
        "train_pairs": len(pairs),
        "kinds": args.kinds,
        "eval_images": len(held_out),
        "levels": {d: {"thresholds": s.thresholds, "rule": s.rule} for d, s in scales.items()},
        "llm": llm.name,
        "llm_load_seconds": llm_load_s,
        "stage1": stage1,
        "stage1_and_features_seconds": features_s,
        "branch": {
            "qformer": "2 layers x 256, 4 heads",
            "queries": args.queries,
            "lr": args.lr,
            "batch_size": args.batch_size,
            "max_steps": args.steps,
            "budget_min": args.budget_min,
        },
        "random_baseline": random_baseline(),
        "majority_baseline": majority,
        "variants": variants,
        "feedback": feedback,
        "machine": _machine(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "explain_vqa.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / "explain_vqa.md").write_text(_vqa_markdown(result))
    return result


def run_feedback(args: argparse.Namespace) -> dict:
    """Redo only the feedback stage from the saved stage-1 model and ``branch-with``; merge it into the results."""
    from agiqa.data import load_dataset
    from agiqa.data.splits import load_splits
    from agiqa.explain.instruct.answer import Answerer

    torch.set_num_threads(args.threads)
    work = Path(args.work_dir).expanduser()
    answerer = Answerer.load(work / "branch-with")
    data = load_dataset("agiqa3k", DATA)
    train_set, test_set = load_splits(SPLITS, data)[0].apply(data)
    inputs = _branch_inputs(answerer.scoring, train_set.samples + test_set.samples)
    feedback = _feedback(
        answerer.scoring, answerer.branch, inputs, train_set.samples, test_set.samples, ["quality", "alignment"], args
    )
    result = json.loads((RESULTS / "explain_vqa.json").read_text())
    result["feedback"] = feedback
    machine = result["machine"]
    machine.setdefault("load_avg_1min", machine.pop("load_avg_1min_at_start", float("nan")))
    (RESULTS / "explain_vqa.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (RESULTS / "explain_vqa.md").write_text(_vqa_markdown(result))
    return feedback


def _vqa_markdown(r: dict) -> str:
    v = r["variants"]
    rows = [
        f"| Random choice (1/5) | {100 * r['random_baseline']:.1f} | {100 * r['random_baseline']:.1f} | | |",
        f"| Majority level of training | {100 * r['majority_baseline']['quality']:.1f} | "
        f"{100 * r['majority_baseline']['correspondence']:.1f} | | |",
    ]
    for name, label in (
        ("without", "MINT branch, without zero-init connection"),
        ("with", "MINT branch, with zero-init connection"),
    ):
        x = v[name]
        rows.append(
            f"| {label} | {100 * x['vqa_acc'].get('quality', 0):.1f} "
            f"| {100 * x['vqa_acc'].get('correspondence', 0):.1f} "
            f"| {x['steps']} steps, {x['train_seconds'] / 60:.1f} min | "
            f"{100 * x['answered'].get('quality', 0):.0f}% / {100 * x['answered'].get('correspondence', 0):.0f}% |"
        )
    cmd = (
        f"python benchmarks/bench_explain.py vqa --steps {r['branch']['max_steps']} --budget-min "
        f"{r['branch']['budget_min']:g} --eval-images {r['eval_images']} --threads {r['machine']['torch_threads']}"
    )
    return (
        "# MINT-IQA explanation branch: VQA accuracy on held-out AGIQA-3K images (CPU)\n\n"
        f"`{cmd}`\n\n"
        f"Split 0 of `src/agiqa/splits/agiqa3k.json` (grouped by prompt): {r['train_images']} training images "
        f"({r['train_pairs']} question-answer pairs of kinds {r['kinds']}), {r['eval_images']} held-out images asked "
        '"How is the quality of the image?" and "How is the correspondence between the image and its text '
        'prompt?" (alignment MOS). Levels bad/poor/fair/good/perfect = quintiles of the training MOS, so random '
        "choice scores 20%. Accuracy per eq. 8-10 (one question per image and type).\n\n"
        "| Answerer | Quality acc. (%) | Correspondence acc. (%) | Instruction tuning "
        "| Answers naming a level (q / c) |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"LLM: {r['llm']} (frozen, loaded in {r['llm_load_seconds']:.0f} s). "
        f"Scoring branch: {r['stage1'].get('scoring')}"
        f" (validation SRCC {r['stage1'].get('stage1_best_val_srcc', float('nan')):.3f}). Branch: Q-Former "
        f"{r['branch']['qformer']}, {r['branch']['queries']} queries, AdamW lr {r['branch']['lr']}, batch "
        f"{r['branch']['batch_size']}; both variants start from the same weights. Time budget: "
        f"{r['branch']['budget_min']} min of training per variant on {r['machine']['torch_threads']} CPU threads of a "
        f"shared machine (load average {r['machine']['load_avg_1min']:.1f} when the results were written). "
        "Paper (Table XV, AIGCIQA2023+, Vicuna-7B): 48.5 / 59.4 with, 47.2 / 57.1 without the connection, random "
        "25 / 33.3 on their choice sets.\n\n" + _feedback_markdown(r["feedback"])
    )


def _feedback_markdown(f: dict) -> str:
    rows = "".join(
        f"| {d} | {f['stage1'][d]['srcc']:.4f} | {f['feedback'][d]['srcc']:.4f} | {f['stage1'][d]['plcc']:.4f} "
        f"| {f['feedback'][d]['plcc']:.4f} |\n"
        for d in f["stage1"]
    )
    return (
        '## Feedback stage (Table XIII "+ Reward")\n\n'
        f"Regressors over [scoring representation ; instruction-aware representation of the dimension's question] "
        f"(from the branch trained with the connection), started from the stage-1 regressors (identical predictions "
        f"at start: {f['start_equals_stage1']}), fine-tuned {f['epochs']} epochs with L1 on the training images; "
        f"{f['test_images']} held-out images.\n\n"
        "| Dimension | SRCC stage 1 | SRCC + feedback | PLCC stage 1 | PLCC + feedback |\n|---|---|---|---|---|\n"
        + rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    cost = sub.add_parser("cost", help="seconds per structured explanation")
    cost.add_argument("--model", default="agiqa-lite")
    cost.add_argument("--n", type=int, default=8, help="images timed")
    vqa = sub.add_parser("vqa", help="train the MINT branch and measure VQA accuracy")
    vqa.add_argument("--scoring", default=None, help="trained MINT-IQA model folder (default: train stage 1 here)")
    vqa.add_argument("--stage1-epochs", type=int, default=10)
    vqa.add_argument("--steps", type=int, default=300)
    vqa.add_argument("--budget-min", type=float, default=25.0, help="training minutes per variant at most")
    vqa.add_argument("--batch-size", type=int, default=8)
    vqa.add_argument("--lr", type=float, default=3e-4)
    vqa.add_argument("--queries", type=int, default=8)
    vqa.add_argument("--kinds", default="level,assess,aligned", help="question kinds trained on")
    vqa.add_argument("--eval-images", type=int, default=160)
    vqa.add_argument("--threads", type=int, default=2)
    vqa.add_argument("--seed", type=int, default=0)
    vqa.add_argument("--feedback-epochs", type=int, default=30)
    fb = sub.add_parser("feedback", help="redo the feedback stage from the saved branch, into explain_vqa.*")
    fb.add_argument("--feedback-epochs", type=int, default=30)
    fb.add_argument("--threads", type=int, default=2)
    fb.add_argument("--seed", type=int, default=0)
    fb.add_argument("--work-dir", default="~/.cache/agiqa/explain-bench")
    vqa.add_argument("--work-dir", default="~/.cache/agiqa/explain-bench")
    args = parser.parse_args()
    result = {"cost": run_cost, "vqa": run_vqa, "feedback": run_feedback}[args.what](args)
    print(json.dumps({k: v for k, v in result.items() if k != "variants"}, indent=1, default=str)[:3000])


if __name__ == "__main__":
    main()
