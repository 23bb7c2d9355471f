"""The BPE simulation and the extension planner, checked against the real `tokenizers` engine."""

from __future__ import annotations

import json
import random
from collections import Counter

from tokenizers import Tokenizer

from polyglot_llama.tokenizer.families import load_base_tokenizer
from polyglot_llama.tokenizer.merge import (apply_extension, bpe_segment, merge_application_counts, plan_extension,
                                             unreachable_pieces)
from polyglot_llama.tokenizer.train import BYTE_TOKENS, SPECIAL_TOKENS, build_llama_tokenizer, save_tokenizer_dir


def test_bpe_segment_agrees_with_the_engine(family_tokenizer_dirs, texts):
    for family in ("llama2-legacy", "gpt2"):
        base = load_base_tokenizer(family_tokenizer_dirs[family])
        engine = Tokenizer.from_str(json.dumps(base.data))
        ranks = {pair: i for i, pair in enumerate(base.merges())}
        sample = texts["en"][:20] + texts["ko"][:20]
        if engine.pre_tokenizer is None:  # legacy Llama 2: the whole normalised paragraph is one BPE word
            words = [engine.normalizer.normalize_str(t) for t in sample]
        else:
            words = [w for t in sample for w, _ in engine.pre_tokenizer.pre_tokenize_str(t)]
        assert len(words) >= 40
        for word in words:
            expected = [t.value for t in engine.model.tokenize(word)]
            got = bpe_segment(word, base.vocab, ranks)
            if None not in got:  # byte-fallback characters: the engine spells out their bytes
                assert got == expected, word


def test_bpe_segment_prefers_lower_rank_then_leftmost():
    vocab = {c: i for i, c in enumerate(["a", "b", "ab", "ba", "aba"])}
    assert bpe_segment("aba", vocab, {("b", "a"): 0, ("a", "b"): 1}) == ["a", "ba"]
    assert bpe_segment("abab", vocab, {("a", "b"): 0}) == ["ab", "ab"]
    assert bpe_segment("xab", vocab, {("a", "b"): 0}) == [None, "ab"]


def _toy_base(tmp_path):
    """Base vocabulary: specials, bytes, ▁ a b ▁a; one merge ▁+a. Hangul is unknown (byte fallback)."""
    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS + BYTE_TOKENS + ["▁", "a", "b", "▁a"])}
    save_tokenizer_dir(build_llama_tokenizer(vocab, [("▁", "a")]), tmp_path)
    return load_base_tokenizer(tmp_path)


def test_plan_adds_missing_characters_first_and_merges_after_old_ones(tmp_path):
    base = _toy_base(tmp_path)
    learnt = [("▁", "한"), ("▁한", "국"), ("a", "b"), ("▁a", "한")]
    ext = plan_extension(base, learnt, Counter({"한": 5, "국": 5, "어": 3, "뷁": 1}), budget=10)
    # "▁ab" style ASCII-only pieces are not added; the rare 뷁 (count 1 < min_frequency 2) is not either.
    assert ext.pieces == ["한", "▁한", "국", "▁한국", "▁a한", "어"]
    assert ext.merges == [("▁", "한"), ("▁한", "국"), ("▁a", "한")]
    assert ext.first_id == 263 and ext.ids == list(range(263, 269)) and ext.skipped["ascii-only"] == 1
    tokenizer = Tokenizer.from_str(json.dumps(apply_extension(base, ext)))
    assert unreachable_pieces(tokenizer, ext.pieces) == []
    assert tokenizer.encode("한국 a한 ab", add_special_tokens=False).tokens == ["▁한국", "▁a한", "▁a", "b"]


def test_plan_respects_the_budget_and_the_extended_split(tmp_path):
    base = _toy_base(tmp_path)
    # The learnt split of "▁a한" is (▁, a한), but the extended model first merges ▁+a (an old merge), so
    # the piece must be added as (▁a, 한), and a한 itself is not needed.
    ext = plan_extension(base, [("▁", "a한")], Counter(), budget=5)
    assert ext.pieces == ["한", "▁a한"] and ext.merges == [("▁a", "한")]
    learnt = [("▁", "한"), ("▁한", "국")]
    assert len(plan_extension(base, learnt, Counter(), budget=4).pieces) == 4
    # 국 and ▁한국 come together or not at all: a character without its piece would be a waste here.
    short = plan_extension(base, learnt, Counter(), budget=3)
    assert short.pieces == ["한", "▁한"] and short.skipped["over budget"] == 1


def test_random_learnt_merges_always_give_reachable_pieces(family_tokenizer_dirs):
    base = load_base_tokenizer(family_tokenizer_dirs["llama2-legacy"])
    rng = random.Random(0)
    alphabet = list("가나다라마바사▁ab.")
    learnt = [(rng.choice(alphabet) + rng.choice(alphabet), rng.choice(alphabet)) for _ in range(300)]
    ext = plan_extension(base, learnt, Counter(), budget=1000)
    assert ext.pieces
    tokenizer = Tokenizer.from_str(json.dumps(apply_extension(base, ext)))
    assert unreachable_pieces(tokenizer, ext.pieces) == []


def test_merge_application_counts_push_uses_down_to_parts():
    merges = [("a", "b"), ("ab", "c"), ("▁", "abc")]
    fired = merge_application_counts(merges, Counter({"▁abc": 2, "ab": 3, "abc": 1, "c": 9}))
    assert (fired["▁abc"], fired["abc"], fired["ab"]) == (2, 3, 6)


def test_valuable_missing_characters_come_before_rarer_merges(tmp_path):
    base = _toy_base(tmp_path)
    learnt = [("▁", "한"), ("▁한", "국")]
    # 語 (3 bytes) seen 40 times saves 80 tokens: more than ▁한국 (fires 10 times), less than ▁한 (fires 100).
    chars = Counter({"한": 100, "국": 10, "語": 40, "本": 1})
    counts = {"▁한": 100, "▁한국": 10}
    ext = plan_extension(base, learnt, chars, budget=10, merge_counts=counts)
    assert ext.pieces == ["한", "▁한", "語", "국", "▁한국"]
    assert plan_extension(base, learnt, chars, budget=3, merge_counts=counts).pieces == ["한", "▁한", "語"]
