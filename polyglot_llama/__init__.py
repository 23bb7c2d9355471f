"""polyglot-llama: take a Llama-2-style checkpoint to new languages."""

__version__ = "0.1.0"
