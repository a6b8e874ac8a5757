"""The public API: what the command line, the HTTP server and user code call.

Scoring (``load``, ``Scorer``: ``score``, ``score_to_file``, ``rank``, ``explain``), model listing and checks
(``model_info``, ``model_card``, ``model_state``), datasets and splits, evaluation, training and the protocol;
what is done with scores: reference percentiles and ``--keep`` (``Reference``, ``plan_keep``), generator benches
(``run_bench``) and the gallery page and report (``write_gallery_report``). The names below are looked up in the
modules that define them on first use, so ``import agiqa.api`` stays light (no torch) until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "agiqa.api.scoring": ["DEFAULT_MODEL", "Scorer", "load"],
    "agiqa.encoders.fast": ["RUNTIMES"],
    "agiqa.pipeline.engine": ["default_threads", "default_workers"],
    "agiqa.pipeline.ray_data": ["RAY_NAME", "ShardSummary", "init_ray", "score_dataset", "score_shards"],
    "agiqa.api.results": ["Ranking", "ScoreResult", "default_rank_dimension"],
    "agiqa.api.items": ["Items", "items_from_paths", "items_from_table"],
    "agiqa.api.models": ["encoder_weights", "model_card", "model_info"],
    "agiqa.models.card": ["ModelCard", "ScoreSpec"],
    "agiqa.models.state": ["STATES", "UntrainedModelError", "model_state"],
    "agiqa.models.reference": ["NoReferenceError", "Reference"],
    "agiqa.keep.expression": ["KeepError", "KeepRule", "parse_keep"],
    "agiqa.bench.run": ["BenchResult", "bench_layout", "run_bench", "summarise_bench"],
    "agiqa.bench.suites": ["PromptSuite", "load_suite", "shipped_suites"],
    "agiqa.keep.apply": ["KeepPlan", "KeepSummary", "apply_keep", "keep_mask", "plan_keep"],
    "agiqa.api.training": ["load_config", "method_config", "protocol_splits"],
    "agiqa.models.registry": ["create_model", "list_models", "resolve_card"],
    "agiqa.data.images": ["MAX_PIXELS"],
    "agiqa.data.files": ["IMAGE_EXTENSIONS", "ImageScan", "find_images", "resolve_image", "scan_images"],
    "agiqa.io": ["INPUT_FORMATS", "read_item_table", "read_table", "table_format"],
    "agiqa.pipeline.resumable": ["PartialRunMismatch", "RunSummary", "partial_dir"],
    "agiqa.pipeline.lock": ["OutputLocked"],
    "agiqa.data": ["Dataset", "DatasetError", "Problem", "get_dataset", "list_datasets", "load_dataset"],
    "agiqa.data.mos": ["check_ratings", "mos_from_ratings"],
    "agiqa.data.splits": ["SplitError", "load_splits", "make_splits", "save_splits"],
    "agiqa.eval.evaluate": [
        "EvaluationError",
        "evaluate_on_splits",
        "evaluate_predictions",
        "labelled_values",
        "match_predictions",
        "metric_table",
    ],
    "agiqa.eval.report": ["aggregate", "rich_table", "single", "write_report"],
    "agiqa.eval.plots": ["scatter_plot"],
    "agiqa.train": ["ConfigError", "TrainConfig", "TrainResult", "TrainingDiverged", "train"],
    "agiqa.train.protocol": ["ProtocolResult", "run_protocol", "write_protocol"],
    "agiqa.train.crossval": ["cross_val_predict"],
    "agiqa.configs": ["shipped_configs"],
    "agiqa.train.probes": ["ROBUSTNESS_RATIOS"],
    "agiqa.train.cache": ["default_cache_dir"],
    "agiqa.train.cache_admin": ["CacheNamespace", "cache_contents", "clear_cache"],
    "agiqa.explain": ["ExplainError", "Explanation", "open_image", "save_heatmap", "write_explanation"],
    "agiqa.explain.instruct.answer": ["Answerer"],
    "agiqa.gallery.folder": ["GalleryFolder", "OutsideGallery"],
    "agiqa.gallery.page": ["GALLERY_ASSETS", "gallery_asset", "inline_page", "served_page"],
    "agiqa.gallery.records": ["annotate_scores", "gallery_model"],
    "agiqa.gallery.report": ["ReportSummary", "write_gallery_report"],
    "agiqa.gallery.thumbs": ["data_url", "thumbnail"],
    "agiqa.serve.options": ["ServeOptions"],
    "agiqa.serve.app": ["create_app"],
    "agiqa.serve.run": ["run_server"],
    "agiqa.extras": ["install_hint"],
    "agiqa": ["__version__"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'agiqa.api' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_WHERE)


__all__ = sorted(_WHERE)
