"""``agiqa train`` killed with SIGKILL, then ``--resume``: does it end with the model of an uninterrupted run?

Usage (from the repository root)::

    python benchmarks/bench_resume.py            # lite/tsp-mgs on the 2,386 AGIQA-3K images, killed at step 500
    python benchmarks/bench_resume.py --quick    # 120 images, killed at step 60, to check the script

Three real ``agiqa train`` processes with the same config and seed (``--threads 1``): an uninterrupted run; a run
killed with SIGKILL once its checkpoint (saved every epoch) has reached ``--kill-step``; the same command with
``--resume``. The feature cache is the user's (``$AGIQA_CACHE_DIR`` or ``~/.cache/agiqa/features``), so the
images are encoded once. Compares the two ``model.safetensors`` (largest absolute difference, byte equality) and the
validation histories. Writes ``benchmarks/results/train_resume.{json,md}``; the run folders go to a temporary
directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _procs import SHARED, agiqa, conditions, context, wait_for, write_results
from safetensors.torch import load_file

from agiqa.api import load_config


def _train(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    return agiqa(
        "train",
        config,
        "--out",
        out,
        "--threads",
        "1",
        *extra,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def _finish(proc: subprocess.Popen, what: str) -> float:
    start = time.monotonic()
    output = proc.communicate()[0]
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed ({proc.returncode}):\n{output[-3000:]}")
    return time.monotonic() - start


def _step(manifest: Path) -> int:
    try:
        return int(json.loads(manifest.read_text())["step"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="lite/tsp-mgs", help="shipped config name or YAML file")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--kill-step", type=int, default=500, help="kill once a checkpoint reaches this step")
    parser.add_argument("--quick", action="store_true", help="120 images, kill at step 60")
    args = parser.parse_args()
    if args.quick:
        args.limit, args.kill_step = 120, 60
    root, started = Path(tempfile.mkdtemp(prefix="agiqa-resume-")), context()
    try:
        data = {"root": str(SHARED / "agiqa3k"), **({"limit": args.limit} if args.limit else {})}
        cfg = load_config(args.config, data=data, train={"progress": False})
        config = root / "run.yaml"
        config.write_text(yaml.safe_dump(cfg.to_dict()))
        whole_seconds = _finish(_train(config, root / "whole"), "the uninterrupted run")

        run = _train(config, root / "run")
        manifest = root / "run" / "checkpoint" / "latest.json"
        wait_for(lambda: _step(manifest) >= args.kill_step or run.poll() is not None, 3600, "the kill step")
        if run.poll() is not None:
            raise SystemExit(f"the run finished before step {args.kill_step}; give a smaller --kill-step")
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        killed_at = _step(manifest)
        model_written = (root / "run" / "model.safetensors").exists()
        resume_seconds = _finish(_train(config, root / "run", "--resume"), "the resumed run")

        a = load_file(str(root / "whole" / "model.safetensors"))
        b = load_file(str(root / "run" / "model.safetensors"))
        diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a) if a.keys() == b.keys() else None
        histories = [json.loads((root / d / "history.json").read_text()) for d in ("whole", "run")]
        result: dict[str, Any] = {
            "context": started,
            "config": args.config,
            "images": args.limit or "all",
            "quick": args.quick,
            "steps": histories[0][-1]["step"] if histories[0] else None,
            "killed_at_checkpoint_step": killed_at,
            "model_written_before_kill": model_written,
            "uninterrupted_seconds": round(whole_seconds, 1),
            "resumed_seconds": round(resume_seconds, 1),
            "max_abs_weight_difference": diff,
            "weights_byte_identical": (root / "whole" / "model.safetensors").read_bytes()
            == (root / "run" / "model.safetensors").read_bytes(),
            "histories_equal": histories[0] == histories[1],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    paths = write_results("train_resume", result, _markdown)
    print(result, "\nwrote", *paths)


def _markdown(r: dict[str, Any]) -> str:
    return "\n".join(
        [
            "# `agiqa train` killed with SIGKILL, then `--resume`",
            "",
            conditions(r),
            f"Config `{r['config']}`, images: {r['images']}, {r['steps']} steps, `--threads 1`, same seed.",
            "",
            "| measure | value |",
            "|---|---|",
            f"| killed after the checkpoint of step | {r['killed_at_checkpoint_step']} |",
            f"| model folder written before the kill | {r['model_written_before_kill']} |",
            f"| uninterrupted run / resumed part | {r['uninterrupted_seconds']} s / {r['resumed_seconds']} s |",
            f"| largest weight difference, resumed vs uninterrupted | {r['max_abs_weight_difference']} |",
            f"| model.safetensors byte-identical | {r['weights_byte_identical']} |",
            f"| validation histories equal | {r['histories_equal']} |",
            "",
        ]
    )


if __name__ == "__main__":
    main()
