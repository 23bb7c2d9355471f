"""Builtin word splitting per script: right for Korean, Japanese, Chinese and Thai without any download."""

from __future__ import annotations

import pickle

from polyglot_llama.corpus.words import ScriptWordTokenizer, word_tokenizer


def test_scripts():
    t = ScriptWordTokenizer()
    assert t.word_tokenize("한국어 문장입니다.") == ["한", "국", "어", "문", "장", "입", "니", "다", "."]
    assert t.word_tokenize("日本語の文章を使っている。カタカナー") == [
        "日", "本", "語", "の", "文", "章", "を", "使", "っている", "。", "カタカナー"]
    assert t.word_tokenize("中文句子，很好。") == ["中", "文", "句", "子", "，", "很", "好", "。"]
    assert t.word_tokenize("ไทยง่าย") == ["ไ", "ท", "ย", "ง่", "า", "ย"]  # tone mark stays on its consonant
    assert t.word_tokenize("Das Donaudampfschiff fährt, nicht? It's well-known.") == [
        "Das", "Donaudampfschiff", "fährt", ",", "nicht", "?", "It's", "well-known", "."]
    assert t.word_tokenize("Привет, мир! नमस्ते दुनिया مرحبا 123") == [
        "Привет", ",", "мир", "!", "नमस्ते", "दुनिया", "مرحبا", "123"]


def test_sentences_and_spans():
    t = ScriptWordTokenizer()
    text = "First one. Second one?\n第三句。"
    assert t.sent_tokenize(text) == ["First one.", "Second one?", "第三句。"]
    assert [text[a:b].strip() for a, b in t.span_tokenize(text)] == t.sent_tokenize(text)


def test_builtin_is_default_and_picklable():
    tok = word_tokenizer("ko")
    assert isinstance(tok, ScriptWordTokenizer)
    assert pickle.loads(pickle.dumps(tok)).word_tokenize("가나") == ["가", "나"]
