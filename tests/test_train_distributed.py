"""``agiqa train`` on 2 CPU processes (torchrun, gloo, DDP) against one process with the same global batch.

Tolerance: 1e-5 on every trained weight and on the logged losses. The two runs differ only in where the float
sums are done (each rank's part of the batch, then gloo's all-reduce, against one sum over the batch); over 16
AdamW steps that moved weights by 6e-8 when this test was written, while dropping the loss scaling for uneven
shards moved them by 3e-2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import _ddp_train
import _train_tiny as tiny
from agiqa.train import train
from agiqa.train.checkpoint import Checkpoint, trainable_state
from agiqa.train.distributed import Distributed

TESTS = Path(__file__).resolve().parent
ATOL = 1e-5


def _torchrun(root: Path, out: Path, *extra: str, crash: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    env["AGIQA_TEST_CRASH"] = "1" if crash else "0"
    args = ["--standalone", "--nproc-per-node", "2", str(TESTS / "_ddp_train.py"), str(root), str(out), *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _assert_same_weights(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert set(got) == set(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=ATOL, rtol=0, msg=key)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory):
    """The single-process run of the same config (same global batch)."""
    root = tmp_path_factory.mktemp("single")
    tiny.register()
    data = tiny.make_dataset(root / "data-0")
    threads = torch.get_num_threads()
    try:
        return train(_ddp_train.config(root / "run"), dataset=data)
    finally:
        torch.set_num_threads(threads)


def test_shard_gives_every_item_of_a_batch_to_exactly_one_rank() -> None:
    idx = torch.tensor([5, 2, 9, 0, 7])
    parts = [Distributed(rank=r, world=2).shard(idx) for r in range(2)]
    assert parts[0].tolist() == [5, 9, 7] and parts[1].tolist() == [2, 0]
    assert Distributed().shard(idx) is idx  # one process: the whole batch


@pytest.mark.slow
def test_two_processes_match_one_and_resume(tmp_path: Path, single) -> None:
    done = _torchrun(tmp_path, tmp_path / "ddp")
    assert done.returncode == 0, done.stderr[-4000:]
    assert single.steps == _ddp_train.EPOCHS * 4  # 16 training images in batches of 5, 5, 5, 1
    items = [json.loads((tmp_path / f"items-{r}.json").read_text()) for r in range(2)]
    assert items == [_ddp_train.EPOCHS * 10, _ddp_train.EPOCHS * 7]  # 3+3+3+1 and 2+2+2+(the 1 again, weighted 0)
    want = trainable_state(single.model)
    _assert_same_weights(load_file(str(tmp_path / "ddp" / "model.safetensors")), want)
    history = json.loads((tmp_path / "ddp" / "history.json").read_text())
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in single.history], abs=ATOL)

    crashed = _torchrun(tmp_path, tmp_path / "resumed", crash=True)  # rank 0 dies after its checkpoint at step 3
    assert crashed.returncode != 0 and Checkpoint(tmp_path / "resumed").exists()
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    resumed = _torchrun(tmp_path, tmp_path / "resumed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    _assert_same_weights(load_file(str(tmp_path / "resumed" / "model.safetensors")), want)
