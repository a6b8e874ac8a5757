"""Commands of this area are attached to ``agiqa.cli.app.app``."""
