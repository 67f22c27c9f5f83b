"""recsys: learning and publishing (models, evaluation, tracking, candidates, publishing, CLI)."""

__version__ = "0.1.0"
