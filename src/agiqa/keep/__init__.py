"""Scores against a reference: percentile columns and the ``--keep`` filter language (``expression``), applied to
score tables with the kept images copied or linked (``apply``)."""
