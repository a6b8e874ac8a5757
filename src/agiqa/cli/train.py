"""``agiqa train CONFIG`` and ``agiqa protocol --method M --dataset D --root PATH``.

``CONFIG`` is a YAML file or the name of a config that ships with agiqa (``lite/tsp-mgs``, ``lite/default``,
``tsp-mgs-clip-b32`` ...), so an installed agiqa trains outside a checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agiqa import api
from agiqa.cli.app import app
from agiqa.cli.errors import FAILED, fail, message

ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", min=1, help="Torch CPU threads (1 is fastest for small heads on busy cores).")
]


@app.command("train")
def train_command(
    config: Annotated[str, typer.Argument(help="Training config: a YAML file or a shipped name (lite/default ...).")],
    out: Annotated[Path | None, typer.Option("--out", help="Model folder to write (default: runs/<name>).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/checkpoint (saved every epoch, or checkpoint_every).")
    ] = False,
    root: Annotated[Path | None, typer.Option("--root", help="Override data.root of the config.")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", help="Override train.epochs.")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Override train.seed.")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Train on the first N images only (a quick first try).")
    ] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train a model; writes OUT/config.yaml + OUT/model.safetensors (load with `agiqa score --model OUT`).

    The first run encodes every image once (a progress line every 30 s in logs), then reuses the feature cache
    (`agiqa cache` shows it).
    """
    train_keys = {"epochs": epochs, "seed": seed, "num_threads": threads}
    data_keys = {"root": str(root) if root else None, "limit": limit}
    try:
        cfg = api.load_config(
            config,
            data={k: v for k, v in data_keys.items() if v is not None},
            train={k: v for k, v in train_keys.items() if v is not None},
        )
    except (FileNotFoundError, api.ConfigError) as err:
        raise fail(message(err)) from None
    try:
        result = api.train(cfg, out_dir=out or Path("runs") / cfg.name, resume=resume)
    except (FileNotFoundError, api.DatasetError, api.SplitError, api.TrainingDiverged) as err:
        raise fail(message(err), FAILED) from None
    except ValueError as err:  # the config does not fit the data or the model; the message names the key
        raise fail(message(err)) from None
    if result.out_dir is None:  # a rank other than 0 under torchrun / accelerate launch: rank 0 reports
        return
    best = f", best validation {result.best_val:.4f}" if result.best_val is not None else ""
    typer.echo(f"trained {cfg.name}: {result.steps} steps in {result.seconds:.1f} s{best}; wrote {result.out_dir}")


@app.command("protocol")
def protocol_command(
    method: Annotated[str, typer.Option("--method", help="Method (tsp-mgs, prefiqa ...): uses config lite/<method>.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset registry name, e.g. agiqa3k.")],
    root: Annotated[Path, typer.Option("--root", help="Folder the dataset was unpacked to.")],
    n_splits: Annotated[int, typer.Option("--n-splits", min=1, help="How many grouped 4:1 splits to run.")] = 10,
    config: Annotated[
        str | None, typer.Option("--config", help="Training config file or shipped name (default: lite/<method>).")
    ] = None,
    splits: Annotated[
        Path | None,
        typer.Option(
            "--splits",
            "--splits-file",
            help="Split file (default: the one agiqa ships for the dataset, else made once in OUT). "
            "--splits-file is its old name.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder of the result files (default: runs/protocol/<method>-<dataset>)."),
    ] = None,
    robustness: Annotated[bool, typer.Option("--robustness/--no-robustness", help="Flip + centre-crop report.")] = True,
    threads: ThreadsOpt = None,
) -> None:
    """Train and test on stored grouped splits; writes protocol_<method>_<dataset>.{csv,json,md} into OUT."""
    if splits is not None and not splits.exists() and splits.name.isdigit():
        raise fail(f"--splits names a split file now; for the number of splits use --n-splits {splits.name}")
    out = out if out is not None else Path("runs") / "protocol" / f"{method}-{dataset}"
    try:
        cfg = api.load_config(
            config or api.method_config(method),
            data={"dataset": dataset, "root": str(root)},
            train={"num_threads": threads} if threads else {},
        )
    except (FileNotFoundError, api.ConfigError) as err:
        raise fail(f"{message(err)} (give --config for a method without a shipped lite config)") from None
    try:
        data = api.load_dataset(dataset, root)
    except KeyError as err:
        raise fail(f"--dataset {message(err)}") from None
    except (FileNotFoundError, api.DatasetError) as err:
        raise fail(message(err), FAILED) from None
    try:
        split_list, _ = api.protocol_splits(data, n_splits, splits, out)
    except api.SplitError as err:
        raise fail(f"{message(err)} (give --splits FILE to make splits for this copy of the data)") from None
    try:
        result = api.run_protocol(cfg, data, split_list, api.ROBUSTNESS_RATIOS if robustness else ())
    except api.DatasetError as err:
        raise fail(message(err), FAILED) from None
    except ValueError as err:  # the config does not fit the data or the model; the message names the key
        raise fail(message(err)) from None
    json_path, md_path = api.write_protocol(result, out, f"protocol_{method}_{dataset}")
    Console().print(api.rich_table(result.table, title=f"{cfg.name} on {dataset}"))
    typer.echo(f"wrote {json_path} and {md_path}")
