"""Shared fixtures. Real data lives in ../shared/data (override with AGIQA_SHARED_DATA); tests that need it skip."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("AGIQA_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set AGIQA_SHARED_DATA or place ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real data (skips the test when absent)."""
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def agiqa3k_root() -> Path:
    """The real AGIQA-3K subset: data.csv + images/ (skips when absent)."""
    return _need(SHARED_DATA / "agiqa3k" / "data.csv").parent


@pytest.fixture(scope="session")
def labels_root() -> Path:
    """Real label files of AGIQA-1K, AIGCIQA2023, ImageReward, PartiPrompts (skips when absent)."""
    return _need(SHARED_DATA / "labels")


@pytest.fixture(scope="session")
def tiny_protocol_data(tmp_path_factory: pytest.TempPathFactory):
    """The tiny synthetic dataset of the protocol tests (6 prompts x 4 images), with the tiny encoder and method
    registered."""
    import _train_tiny as tiny

    tiny.register()
    return tiny.make_dataset(tmp_path_factory.mktemp("tiny") / "images", n_prompts=6, per_prompt=4)


@pytest.fixture
def keep_torch_threads() -> Iterator[None]:
    """Torch's thread count as it was before the test (``--threads`` sets it for the whole process)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
