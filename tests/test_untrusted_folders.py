"""Model folders from strangers: loading one never runs code from it, and a damaged one is an error naming the file
(and the tensor), never a model with untrained or garbled heads."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from _tiny_checkpoints import save_tiny_clip
from agiqa.api import load
from agiqa.cli import app
from agiqa.encoders import create_encoder
from scoring_fixtures import write_images, write_tiny_model

SRC = Path(__file__).resolve().parents[1] / "src"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


class Bomb:
    """Unpickling this runs ``Path(marker).touch()``: proof that a loader executed code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _bomb(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Bomb(marker)))


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    return write_tiny_model(tmp_path / "model")


def test_pickled_weights_are_refused_not_unpickled(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for name in ("model.bin", "model.pth"):
        _bomb(folder / name, marker)
        card = yaml.safe_load((folder / "config.yaml").read_text())
        (folder / "config.yaml").write_text(yaml.safe_dump({**card, "weights": name}))
        with pytest.raises(ValueError, match=rf"{re.escape(str(folder / name))}: not a readable safetensors file"):
            load(str(folder))
    assert not marker.exists()


def test_a_yaml_python_tag_is_refused_not_run(folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = (folder / "config.yaml").read_text()
    tag = f"description: !!python/object/apply:pathlib.Path.touch [{str(marker)!r}]\n"
    (folder / "config.yaml").write_text(tag + text)
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder / 'config.yaml'))}: not a valid model card"):
        load(str(folder))
    assert not marker.exists()


def test_a_wrong_shape_names_the_tensor_and_both_shapes(folder: Path) -> None:
    state = load_file(str(folder / "model.safetensors"))
    state["head.weight"] = torch.zeros(1, 5)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"tensor 'head.weight' has shape \(1, 5\) in the file but .* needs \(1, 8\)"):
        load(str(folder))


def test_a_truncated_weights_file_names_the_file(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) - 40])
    with pytest.raises(ValueError, match=rf"{re.escape(str(folder / 'model.safetensors'))}: not a readable"):
        load(str(folder))


def test_a_card_cut_before_its_weights_line_is_not_loaded_untrained(folder: Path, tmp_path: Path) -> None:
    write_images(tmp_path / "imgs", 1)
    lines = (folder / "config.yaml").read_text().splitlines(keepends=True)
    (folder / "config.yaml").write_text("".join(line for line in lines if not line.startswith("weights:")))
    with pytest.raises(ValueError, match=r"config.yaml names no `weights:` but .*model.safetensors is beside it"):
        load(str(folder))
    args = ["score", str(tmp_path / "imgs"), "--model", str(folder), "--out", str(tmp_path / "s.csv")]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 2 and "names no `weights:`" in " ".join(result.output.split())


def test_a_cut_card_names_the_file(folder: Path) -> None:
    text = (folder / "config.yaml").read_text()
    (folder / "config.yaml").write_text(text[: text.index("dimensions:") + 20])
    with pytest.raises(ValueError, match=re.escape(str(folder / "config.yaml"))):
        load(str(folder))


def test_a_clip_folder_with_pickled_weights_is_refused_without_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = save_tiny_clip(tmp_path / "clip")
    (clip / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    _bomb(clip / "pytorch_model.bin", marker)
    loads: list[object] = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))  # what transformers would unpickle with
    with pytest.raises(FileNotFoundError, match="pickled pytorch_model.bin weights are never loaded"):
        create_encoder(f"clip:{clip}")
    assert loads == [] and not marker.exists()


def test_nothing_in_the_repository_unpickles() -> None:
    """Every way to run code from a file, searched for in the package and the benchmarks."""
    forbidden = [
        r"^\s*(import|from)\s+(pickle|cPickle|dill|cloudpickle|joblib)\b",
        r"\byaml\.(load|unsafe_load|full_load|load_all)\(",
        r"\byaml\.(Unsafe|Full)?Loader\b",
        r"trust_remote_code\s*=\s*True",
        r"allow_pickle\s*=\s*True",
        r"\bread_pickle\(",
        r"weights_only\s*=\s*False",
    ]
    hits = []
    files = [*SRC.rglob("*.py"), *BENCHMARKS.rglob("*.py")]
    for path in files:
        for k, line in enumerate(path.read_text().splitlines(), 1):
            if any(re.search(p, line) for p in forbidden):
                hits.append(f"{path}:{k}: {line.strip()}")
            if "torch.load(" in line and "weights_only=True" not in line:
                hits.append(f"{path}:{k}: torch.load without weights_only=True: {line.strip()}")
            if re.search(r"Model\w*\.from_pretrained\(", line) and "use_safetensors=True" not in line:
                if "Config" not in line and "Tokenizer" not in line and "gguf_file" not in line:
                    hits.append(f"{path}:{k}: a model loaded without use_safetensors=True: {line.strip()}")
    assert len(files) > 50 and hits == []


def test_a_foreign_folder_copy_still_loads(folder: Path, tmp_path: Path) -> None:
    """The checks refuse damage, not ordinary folders: a copy elsewhere, with junk files beside it, loads."""
    copy = tmp_path / "elsewhere" / "model"
    shutil.copytree(folder, copy)
    _bomb(copy / "pytorch_model.bin", tmp_path / "pwned")
    scorer = load(str(copy))
    assert scorer.name == "test-tiny" and not (tmp_path / "pwned").exists()
