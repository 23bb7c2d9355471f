"""`polyglot-llama demo`: every stage end to end on the bundled sample text."""

from .pipeline import DemoConfig, run

__all__ = ["DemoConfig", "run"]
