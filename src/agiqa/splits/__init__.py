"""Grouped train/test splits that ship with agiqa (``<dataset>.json``); see ``agiqa.data.splits.shipped_splits``."""
