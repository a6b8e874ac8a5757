"""One rank of the 2-process training test: ``torchrun --nproc-per-node 2 tests/_ddp_train.py ROOT OUT [--resume]``.

Trains the tiny model on the tiny dataset (each rank writes its own identical copy under ROOT) and writes how many
items this rank computed losses of to ROOT/items-RANK.json; with ``AGIQA_TEST_CRASH=1`` rank 0 dies right after its
first checkpoint, as a killed run would.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import _train_tiny as tiny
from agiqa.train import TrainConfig, train
from agiqa.train import checkpoint as checkpoint_module
from agiqa.train.objectives import Objective

EPOCHS, BATCH = 4, 5  # 16 training images: batches of 5, 5, 5, 1 (uneven shards, one rank empty)


def config(root: Path) -> TrainConfig:
    """The run both the 2-process and the single-process side train (same global batch)."""
    train_keys = {"epochs": EPOCHS, "batch_size": BATCH, "lr": 0.02, "checkpoint_every": 3, "keep_best": False}
    return tiny.train_config(root, "tiny-ddp", 0.34, num_threads=1, **train_keys)


def main() -> None:
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    rank = int(os.environ.get("RANK", "0"))
    tiny.register()
    data = tiny.make_dataset(root / f"data-{rank}")
    if os.environ.get("AGIQA_TEST_CRASH") == "1" and rank == 0:
        real_save = checkpoint_module.Checkpoint.save

        def save_then_die(self, *args, **kwargs):
            real_save(self, *args, **kwargs)
            os._exit(3)

        checkpoint_module.Checkpoint.save = save_then_die
    seen = [0]
    real_loss = Objective.batch_loss

    def counted_loss(self, model, bank, idx, step, device):
        seen[0] += len(idx)
        return real_loss(self, model, bank, idx, step, device)

    Objective.batch_loss = counted_loss
    train(config(root / f"run-{rank}"), out_dir=out, resume="--resume" in sys.argv, dataset=data)
    (root / f"items-{rank}.json").write_text(json.dumps(seen[0]))


if __name__ == "__main__":
    main()
