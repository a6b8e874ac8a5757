"""Scoring many items: the batched engine (``engine.iter_scores``) and the resumable file writer
(``resumable.score_to_file``) that ``Scorer.score`` and ``agiqa score`` run on."""
