"""Tokenizers: train a Llama-2-style BPE, extend it with new-language pieces, measure fertility."""
