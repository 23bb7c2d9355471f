"""Quality gate on real text shipped by PyPI, npm and Debian packages (tests/real_text.py): each language's own
recipe keeps at least 90 % of the prose documents (legal text, news, parliamentary speeches, technical papers, a FAQ,
tutorials), drops exactly the documents listed in REJECTED for the reasons given there (the non-prose ones,
labelled in NOT_PROSE, included), and still removes web junk made from the same text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import real_text
from polyglot_test_utils import sample_texts
from polyglot_llama.config import load_config
from polyglot_llama.corpus.build import _filter_steps
from polyglot_llama.corpus.recipe import CorpusBuildConfig
from polyglot_llama.corpus.words import word_tokenizer

RECIPES = Path(__file__).resolve().parents[3] / "data_recipes"
LANGUAGES = ["ko", "ja", "zh", "th", "de", "en"]
# Documents that are not prose, labelled by reading them, with what they are. The share of prose kept must
# reach 90 %; what happens to these is pinned in REJECTED like everything else.
NOT_PROSE = {
    "ko": {"1809896": "bill whose second half (52 % of its characters) is the table of current vs amended "
                      "articles, the two columns interleaved mid-word by the PDF dump",
           "1809899": "bill whose second half (55 %) is the same kind of interleaved two-column comparison table",
           "1809897": "troop-dispatch consent motion: 70 % is a dated bullet chronology (○ ’10. 8 ...) and budget "
                      "tables (단위: 백만원, 2011 13,710 ...)",
           "1809898": "troop-dispatch extension motion: 70 % is a dated bullet chronology and budget tables",
           "kss-news-tulips-page": "news page as crawled: photo caption and byline, the article, then the "
                                   "portal's footer of link headlines and copyright lines",
           "kss-tv-schedule": "TV sports schedule: times, teams and channels between ==== rules"},
    "zh": {"rmrb-199801-023": "a poem (43 verse lines, none ending in punctuation)"},
    "th": {"orchid-007": "conference timetable (08.45-09.00 พิธีเปิด ...)",
           "orchid-045": "conference timetable",
           "orchid-039": "session programme: chair, numbered paper titles in quotes",
           "orchid-047": "session programme",
           "orchid-043": "a committee's member list, numbered"},
}
# Every real document the recipe drops, prose or not: its step:reason, the value that decided it (datatrove's
# own statistic with the recipe's segmenter; limit in brackets) and why a reader agrees (docs/corpus.md).
ALPHA, DUP5, DUP6 = ("gopher_quality:gopher_below_alpha_threshold", "gopher_repetition:duplicated_5_n_grams",
                     "gopher_repetition:duplicated_6_n_grams")
REJECTED = {
    "ko": {"1809896": (DUP5, "0.296 [0.201]: the amended articles appear twice, in the amending text and the table"),
           "1809899": (DUP5, "0.234 [0.201]: the same"),
           "1809897": (ALPHA, "0.747 [0.791]: a quarter of the tokens are figures, dates and bullets"),
           "1809898": (ALPHA, "0.710 [0.791]: the same"),
           "kss-news-tulips-page": ("fineweb_quality:line_punct_ratio",
                                    "0.0 [0.062]: neither line (headline; article + footer) ends a sentence"),
           "kss-tv-schedule": ("language:low_language_score", "a schedule of names, times and rules, not Korean text"),
           "mate-guide-ko-caja-browser-mode": (DUP5, ("0.256 [0.201]: step-by-step help, '... 선택하십시오.' (select ...) "
                                                      "and '... 누르십시오.' (press ...) 19 times each")),
           "mate-guide-ko-goscaja-8": (DUP5, "0.297 [0.201]: the same, '선택하십시오' 53 times")},
    "ja": {"hironsan-010": (ALPHA, "0.754 [0.759]: sumo results, ranks, birth years and tallies"),
           "hironsan-012": (ALPHA, "0.759 [0.759]: birth dates, a typhoon's position and times, golf results"),
           "hironsan-018": (ALPHA, "0.679 [0.759]: a list of rainfall per city (水戸164ミリ、宇都宮230.5ミリ ...)")},
    "zh": {"rmrb-199801-011": (ALPHA, "0.734 [0.735]: tourism statistics, full-width figures and percentages"),
           "rmrb-199801-014": (ALPHA, "0.718 [0.735]: a biography as a list of years and dates"),
           "rmrb-199801-023": ("fineweb_quality:line_punct_ratio", "0.0 [0.106]: verse, no line ends a sentence")},
    "th": {**{i: (ALPHA, "0.642-0.864 [0.87]: timetables, programmes, a member list") for i in
              ("orchid-007", "orchid-045", "orchid-039", "orchid-047", "orchid-043")},
           "orchid-037": (ALPHA, ("0.853 [0.87]: a superconductor paper with formulae ('Y Ba2 Cu3 O7', 'a = 3.880 A') "
                                  "and an English reference list")),
           "orchid-025": (DUP5, ("0.199 [0.185]: a record layout, 'Field n ... ตัวแปรชนิด string ขนาด n ตัวอักษร' "
                                 "32 times")),
           "mate-guide-overview-workspaces": ("gopher_repetition:top_2_gram",
                                              "0.246 [0.221]: a page on workspaces, 'พื้น ที่ทำงาน' 33 times"),
           "mate-guide-gospanel-557": (DUP5, ("0.253 [0.185]: 'การเพิ่มปุ่ม ... ลงในพาเนล ทำได้โดยคลิกขวาที่พื้นที่ว่างบน"
                                              "พาเนล ...' (how to add a button) repeated for each of six buttons")),
           "mate-guide-panel-default": (DUP5, ("0.231 [0.185]: 'เลือกตัวเลือกนี้ถ้าต้องการให้...' (choose this option "
                                               "to ...) and the applet's name repeated through its options"))},
    "de": {"bundestag-1995-11-30-308": (DUP6, ("0.151 [0.134]: the chair's formulas ('Sind Sie damit "
                                               "einverstanden?', 'an die ... aufgeführten Ausschüsse') repeated")),
           "bundestag-2018-04-27-122": (DUP5, ("0.1412 [0.141] (6-grams 0.180 [0.134]): the chair reads the same "
                                               "list of four committees twice"))},
    # FineWeb's line rule on a speech stored as one line: its only line ends in a closing quotation mark, not in
    # . ! ? (0 of 1 lines, limit 0.12). Not junk; the share of prose kept stays at 57/60.
    "en": {i: ("fineweb_quality:line_punct_ratio", "0.0 [0.12]: one line, ending in a quotation mark") for i in
           ("commons-1991-06-27-418", "commons-2014-02-05-322", "commons-2019-02-05-334")},
}
MIN_PROSE_SHARE = 0.9


def _run_recipe(language: str, docs: list[dict], tmp_path: Path, **overrides) -> tuple[list[str], dict[str, str]]:
    """Kept ids and {rejected id: reason} after the reader and the recipe's filter steps (the build's own list)."""
    tmp_path.mkdir(exist_ok=True)
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    cfg = load_config(CorpusBuildConfig, RECIPES / f"{language}.yaml",
                      {"input": [str(raw)], "output": str(tmp_path), **overrides})
    data = None
    for step in _filter_steps(cfg, [str(raw)], str(tmp_path / "rejected")):
        data = step.run(data, rank=0, world_size=1)
    kept = [doc.id for doc in data]
    rejected = {}
    for path in (tmp_path / "rejected").glob("*/*.jsonl.gz"):
        for line in gzip.open(path, "rt", encoding="utf-8"):
            record = json.loads(line)
            rejected[record["id"]] = f"{record['step']}:{record['reason']}"
    return kept, rejected


def _junk(language: str, docs: list[dict]) -> dict[str, str]:
    """Web junk built from the language's own real text."""
    first = docs[0]["text"].replace("\n", " ")
    sentence = first[: max(first.find(".") + 1, first.find("。") + 1, first.find("다.") + 2, 40)].strip()
    words = first.split()[:8] if language in ("ko", "de", "en") else list(first[:16])  # written with spaces or not
    return {
        "junk-repeated-lines": "\n".join([sentence] * 30),
        "junk-links": "\n".join(f"https://shop.example/{i} {first[i * 3:i * 3 + 6]}" for i in range(40)),
        "junk-wrong-language": " ".join(sample_texts("de" if language == "en" else "en")[:3]),
        "junk-mixed-script": " ".join(f"{w} casino bonus free spins 100% WIN" for w in words * 4),
        "junk-boilerplate": "\n".join(["Home | Login | Sign up | Cart", sentence[:12], "© 2024 All rights reserved"] * 12),
    }


@pytest.mark.parametrize("language", LANGUAGES)
def test_real_prose_is_kept_and_junk_removed(language, tmp_path):
    docs = real_text.all_documents(language)
    junk = _junk(language, docs)
    kept, rejected = _run_recipe(language, docs + [{"id": k, "text": v} for k, v in junk.items()], tmp_path)
    prose = [d["id"] for d in docs if d["id"] not in NOT_PROSE.get(language, {})]
    share = len(set(prose) & set(kept)) / len(prose)
    real_rejected = {i: r for i, r in rejected.items() if not i.startswith("junk-")}
    print(f"{language}: kept {len(set(prose) & set(kept))}/{len(prose)} prose ({share:.1%}), "
          f"{len(kept) - len(set(prose) & set(kept))} of {len(docs) - len(prose)} others; rejected {real_rejected}; "
          f"junk {dict((k, rejected.get(k, 'KEPT')) for k in junk)}")
    assert set(NOT_PROSE.get(language, {})) <= {d["id"] for d in docs}
    assert real_rejected == {i: step for i, (step, _) in REJECTED[language].items()}
    assert share >= MIN_PROSE_SHARE
    assert "constitution" in kept or language != "ko"
    assert set(junk) <= set(rejected), [k for k in junk if k not in rejected]
    # the page in another language goes at the language filter, not by luck at a later one (a word filter would)
    assert rejected["junk-wrong-language"] == "language:other_language"


def test_korean_recipe_segments_per_eojeol():
    """The shipped ko recipe uses Kiwi per eojeol (11-16x the plain LID loop, against ~116x whole-document)."""
    cfg = load_config(CorpusBuildConfig, RECIPES / "ko.yaml", {"input": ["-"], "output": "-"})
    assert cfg.segmenter == "datatrove_eojeol"


def test_korean_per_eojeol_segmenter_makes_the_same_decisions(tmp_path):
    """segmenter datatrove_eojeol (Kiwi per eojeol, memoised; the ko recipe's) keeps and rejects what FineWeb-2's
    whole-document Kiwi does, for the same reasons, on the real Korean text and the junk made from it (its words
    differ in ~2 %)."""
    docs = real_text.all_documents("ko")
    docs += [{"id": k, "text": v} for k, v in _junk("ko", docs).items()]
    reference = _run_recipe("ko", docs, tmp_path / "whole", segmenter="datatrove")
    memo = word_tokenizer("ko", "datatrove_eojeol")
    memo._words.clear()
    per_eojeol = _run_recipe("ko", docs, tmp_path / "eojeol")
    assert len(memo._words) > 3000  # the recipe's filters went through the memo (4,000+ distinct eojeols)
    assert per_eojeol == reference
    assert {i: r for i, r in reference[1].items() if not i.startswith("junk-")} == {
        i: step for i, (step, _) in REJECTED["ko"].items()}


# FineWeb-2's per-language configs (github.com/huggingface/fineweb-2, configs/<lang>.yml at d0defb2, Oct 2025):
# language_score, dup_line_frac, top_n_grams, dup_n_grams, line_punct_thr, new_line_ratio, min/max_avg_word_length,
# max_non_alpha_words_ratio, stopwords, copied by hand. Its fineweb-2-pipeline.py fixes the rest for every language:
# dup_para_frac, dup_line_char_frac, dup_para_char_frac 0; char_duplicates_ratio 0.1; short_line_thr off; 2 stop words.
FINEWEB2 = {
    "ko": (0.842, 0.374, [[2, 0.282], [3, 0.228], [4, 0.185]],
           [[5, 0.201], [6, 0.184], [7, 0.168], [8, 0.154], [9, 0.14], [10, 0.127]], 0.062, 0.196, 1, 6, 0.791,
           "의 다 이 는 에 을 한 년 하 은 를 했 고 에서 가 있 으로 인 월 로 되"),
    "ja": (0.886, 0.328, [[2, 0.239], [3, 0.196], [4, 0.172]],
           [[5, 0.243], [6, 0.225], [7, 0.207], [8, 0.19], [9, 0.175], [10, 0.159]], 0.096, 0.13, 1, 6, 0.759,
           "の に を は た て が と で 年 し ・ 月 れ さ"),
    "zh": (0.692, 0.287, [[2, 0.256], [3, 0.201], [4, 0.171]],
           [[5, 0.198], [6, 0.182], [7, 0.167], [8, 0.154], [9, 0.14], [10, 0.127]], 0.106, 0.178, 1, 5, 0.735,
           "的 年 在 月 是 和 日 了 於 · 為 有 被 人 中 为 他 與 後 也 而 由"),
    "th": (0.9, 0.349, [[2, 0.221], [3, 0.197], [4, 0.162]],
           [[5, 0.185], [6, 0.168], [7, 0.152], [8, 0.137], [9, 0.124], [10, 0.111]], 0.0, 0.153, 2, 10, 0.9,
           "ใน ที่ และ ของ เป็น มี การ ได้"),
    "de": (0.821, 0.263, [[2, 0.169], [3, 0.153], [4, 0.137]],
           [[5, 0.141], [6, 0.134], [7, 0.126], [8, 0.117], [9, 0.108], [10, 0.098]], 0.0, 0.152, 0, 15, 0.774,
           "der und die in von im den des mit das er dem als wurde für"),
}


FIELDS = ("language_score", "dup_line_frac", "top_n_grams", "dup_n_grams", "line_punct_thr", "new_line_ratio",
          "min_avg_word_length", "max_avg_word_length", "max_non_alpha_words_ratio", "stopwords")  # FINEWEB2's order
# Where a recipe departs from FineWeb-2, and why (the recipe's comment and docs/corpus.md give the measurements).
OURS = {"th": {"max_non_alpha_words_ratio": 0.87}}  # FineWeb-2's 0.9 dropped six Thai prose texts of the gate;
# 0.87 separates the gate's reader-labelled non-prose (<= 0.864) from all its prose but one (>= 0.878)


@pytest.mark.parametrize("language", list(FINEWEB2))  # en has no FineWeb-2 config: FineWeb's English values
def test_recipe_thresholds_are_fineweb2s(language):
    """The gate above judges FineWeb-2's calibration, not thresholds moved until the real text passes: every
    threshold is FineWeb-2's but the departures listed in OURS, each one documented."""
    cfg = load_config(CorpusBuildConfig, RECIPES / f"{language}.yaml", {"input": ["-"], "output": "-"})
    lid, rep, fw, gq = cfg.lid, cfg.gopher_repetition, cfg.fineweb_quality, cfg.gopher_quality
    recipe = dict(zip(FIELDS, (lid.threshold, rep.dup_line_frac, rep.top_n_grams, rep.dup_n_grams, fw.line_punct_thr,
                               fw.new_line_ratio, gq.min_avg_word_length, gq.max_avg_word_length,
                               gq.max_non_alpha_words_ratio, " ".join(gq.stop_words))))
    fineweb2 = dict(zip(FIELDS, FINEWEB2[language]))
    assert recipe == {**fineweb2, **OURS.get(language, {})}
    assert all(fineweb2[key] != value for key, value in OURS.get(language, {}).items())  # a listed departure is one
    assert (rep.dup_para_frac, rep.dup_line_char_frac, rep.dup_para_char_frac) == (0, 0, 0)
    assert (fw.char_duplicates_ratio, fw.short_line_thr, gq.min_stop_words) == (0.1, 1.0, 2)


def test_parliament_speeches_read_as_printed():
    """ParlSpeech stores older speeches tokenised and some as UTF-8 read as cp1252; the gate reads them repaired."""
    texts = [d["text"] for d in real_text.german() + real_text.english()]
    for broken in (" , ", " . ", " ! ", " _ ", "â€", "Â£"):
        assert not any(broken in t for t in texts), broken
    assert any("Frau Präsidentin! Meine Damen und Herren!" in t for t in texts)
    assert any("£112.7 million" in t for t in texts)


def test_orchid_read_without_its_markup():
    """ORCHID marks an English sentence with a leading '%E ' and leaves annotators' notes between the pieces of
    a sentence; the gate reads the text as printed, English sentences kept."""
    texts = [d["text"] for d in real_text.thai()]
    assert not any("%E" in t or "Concatenate with the preceding" in t for t in texts)
    assert any("\n4. M. Morimoto, S. Sato, K. Sumito and K. Oshitani," in t for t in texts)
    assert any("ทำให้จำเป็นจะต้องมี byte convert logic ซึ่งจะทำหน้าที่จัดเรียงข้อมูล" in t for t in texts)


def test_korean_faq_reads_the_translated_paragraphs():
    """korean_faq (debian-faq-ko 11.1): 16 chapters, 455 paragraphs of the 694 are translated; the ones still in
    English, the contents' heading and the <pre> blocks (which a plain ``<p[^>]*>`` would open) are not read."""
    docs = real_text.korean_faq()
    assert len(docs) == 16 and docs[0]["id"] == "debian-faq-ko-basic-defs"
    lines = [line for d in docs for line in d["text"].split("\n")]
    assert len(lines) == 455 and sum(len(d["text"]) for d in docs) == 46670
    pkg_basics = next(d["text"] for d in docs if d["id"] == "debian-faq-ko-pkg-basics").split("\n")
    assert len(pkg_basics) == 24  # of its 104 paragraphs: the chapter is mostly untranslated
    assert pkg_basics[0].startswith("이 장은 저수준 내부 데비안 패키지 관리를 다룹니다.")
    assert "차례" not in lines and not any(line.startswith("Binary packages") for line in lines)
