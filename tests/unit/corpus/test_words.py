"""Builtin word splitting per script: right for Korean, Japanese, Chinese and Thai without any download."""

from __future__ import annotations

import os
import pickle
import signal
import time

from polyglot_llama.corpus.words import ScriptWordTokenizer, word_tokenizer


def test_scripts():
    t = ScriptWordTokenizer()
    assert t.word_tokenize("한국어 문장입니다.") == ["한", "국", "어", "문", "장", "입", "니", "다", "."]
    # in NFD (MinHash shingles read datatrove's simplify_text, which ends in NFD) a syllable is 2-3 conjoining
    # jamo and still one token; a compatibility jamo (ㄱ) is a letter of its own
    assert t.word_tokenize("\u1112\u1161\u11ab\u1100\u116e\u11a8\u110b\u1165 \u3131 \u1100\u1161\u11a8") == [
        "\u1112\u1161\u11ab", "\u1100\u116e\u11a8", "\u110b\u1165", "\u3131", "\u1100\u1161\u11a8"]  # 한 국 어 ㄱ 각
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


def test_fineweb2_segmenters_are_default_and_builtin_is_picklable():
    # FineWeb-2's (datatrove's) assignment: Kiwi for Korean, spaCy+SudachiPy, spaCy+jieba, PyThaiNLP
    assert word_tokenizer("ko").word_tokenize("대한민국 헌법은 국민의 권리를 정한다.") == [
        "대한민국", "헌법", "은", "국민", "의", "권리", "를", "정한", "한다", "."]
    assert word_tokenizer("ja").word_tokenize("代表者を通じて行動する。") == ["代表", "者", "を", "通じ", "て", "行動", "する", "。"]
    # jieba, not datatrove's "zh" row (spaCy "xx", which returns the whole sentence as one word)
    assert word_tokenizer("zh").word_tokenize("中共中央总书记发表新年讲话。") == [
        "中共中央", "总书记", "发表", "新年", "讲话", "。"]
    assert word_tokenizer("zh").word_tokenize("１９９７年１２月") == ["１９９７", "年", "１２", "月"]  # jieba: 1 digit a word
    assert word_tokenizer("th").word_tokenize("ภาษาไทยเป็นภาษาที่สวยงาม") == ["ภาษาไทย", "เป็น", "ภาษา", "ที่", "สวยงาม"]
    tok = word_tokenizer("ko", "builtin")
    assert isinstance(tok, ScriptWordTokenizer)
    assert pickle.loads(pickle.dumps(tok)).word_tokenize("가나") == ["가", "나"]


def test_kiwi_per_eojeol_memo():
    """segmenter datatrove_eojeol: each eojeol's own Kiwi analysis, the same from the cache and after it is emptied."""
    memo = word_tokenizer("ko", "datatrove_eojeol")
    memo._words.clear()
    text = "오늘날 날씨가 따뜻한 봄입니다. 오늘날 우리는 따뜻한 차를 마신다."
    # Kiwi on each eojeol alone (whole-document Kiwi gives 오늘날 and 따뜻 + 한 + 한: see docs/corpus.md)
    expected = ["오늘", "날", "날씨", "가", "따뜻한", "한", "봄", "입", "입니다", ".", "오늘", "날", "우리", "는", "따뜻한",
                "한", "차", "를", "마신", "신다", "."]
    assert memo.word_tokenize(text) == expected
    assert memo._words["따뜻한"] == ["따뜻한", "한"] and len(memo._words) == 7  # one entry per distinct eojeol
    assert memo.word_tokenize(text) == expected  # all from the cache
    memo.max_entries, memo._words["오늘날"] = 7, ["stale"]  # full: the next new eojeol empties the cache
    assert memo.word_tokenize("새 " + text) == ["새", *expected]
    memo.max_entries = 200_000
    # a 20+ digit run: datatrove deletes it before Kiwi and cuts words at shifted offsets; kept as datatrove does
    odd = "계좌 12345678901234567890123 으로 보냈다."
    assert memo.word_tokenize(odd) == word_tokenizer("ko").word_tokenize(odd) == ["계좌", "23", "56", "6", "7", "8"]


def test_script_tokenizer_by_chunk_with_memo_equals_the_regex_on_the_whole_text():
    from polyglot_test_utils import sample_texts

    from polyglot_llama.corpus.words import _TOKEN

    texts = [t for lang in ("ko", "ja", "zh", "de", "en", "ru", "ar", "hi") for t in sample_texts(lang)[:6]]
    # every kind of whitespace between tokens, and tokens that would run on across it if it were not a break
    texts += ["AI가\u30002019년\xa0don't\u2028well-known\tกินข้าว\x1cテスト\u200bです", "  ", "", "a\n\nb", "한국어"]
    tokenizer = ScriptWordTokenizer("ko", max_entries=50)  # small: the memo fills and starts over on the way
    # chunks are str.split()'s, whose whitespace includes the ASCII information separators U+001C-U+001F
    as_spaces = str.maketrans("\x1c\x1d\x1e\x1f", "    ")
    for _ in range(2):  # second pass: the memo's answers
        for text in texts:
            assert tokenizer.word_tokenize(text) == _TOKEN.findall(text.translate(as_spaces)), text
    assert 0 < len(tokenizer._tokens) <= 50
    copy = pickle.loads(pickle.dumps(tokenizer))
    assert (copy.language, copy.max_entries, copy._tokens) == ("ko", 50, {})


def test_kiwi_per_eojeol_works_in_a_worker_forked_after_the_parent_used_it():
    # corpus build forks its workers; a Kiwi loaded before the fork waited forever in the worker (its analysis
    # thread is not forked), so a 2-worker build run after an in-process one hung in the filter stage
    memo = word_tokenizer("ko", "datatrove_eojeol")
    assert memo.word_tokenize("국민의 권리") == ["국민", "의", "권리"]  # loads Kiwi here
    pid = os.fork()
    if pid == 0:  # the worker: an eojeol the parent never analysed, so Kiwi runs
        ok = memo.word_tokenize("헌법은 정한다") == ["헌법", "은", "정한", "한다"]
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, "the forked worker segmented differently"
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("Kiwi hung in a worker forked after the parent loaded it")
