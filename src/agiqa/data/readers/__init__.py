"""Built-in benchmark readers; importing this package registers them with ``agiqa.data.datasets``."""

from agiqa.data.readers import agiqa1k, agiqa3k, aigciqa2023, generic, hpdv2, imagereward, pickapic  # noqa: F401
