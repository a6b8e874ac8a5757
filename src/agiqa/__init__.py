"""agiqa: quality, alignment and preference assessment of AI-generated images."""

__version__ = "0.1.0"
