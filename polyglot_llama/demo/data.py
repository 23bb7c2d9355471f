"""The demo's inputs, built from the bundled sample text (our own writing, parallel across languages).

- a raw "web crawl": every sample paragraph, without language labels, plus exact and near duplicates,
  junk pages, a malformed JSON line and a record without text, for the corpus stage to sort out;
- a chat dataset: "write the first sentence of this text" in the target language and English, a task a
  tiny model can learn from a few hundred examples (copying from the prompt);
- helpfulness preference pairs: the right first sentence (chosen) versus the parallel sentence in another
  language (rejected), so the reward model learns "answer in the language you were asked in";
- safety preference pairs from resources/demo/safety_pairs.jsonl (refusal preferred to compliance);
- prompt sets for rejection sampling, PPO and Ghost Attention.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from ..io import write_jsonl, write_text

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
SAMPLE_DIR = RESOURCES / "sample_text"

FIRST_SENTENCE_INSTRUCTION = {
    "en": "Write the first sentence of this text:",
    "ko": "다음 글의 첫 문장을 쓰세요:",
    "ja": "次の文章の最初の文を書いてください：",
    "zh": "请写出下面这段话的第一句：",
    "de": "Schreibe den ersten Satz dieses Textes:",
}

JUNK_PAGES = [
    "BUY NOW!!! CLICK HERE!!! BEST PRICE!!! BUY NOW!!! CLICK HERE!!! BEST PRICE!!! " * 6,
    "home | about | contact | login | home | about | contact | login\n" * 12,
    "0 1 2 3 4 5 6 7 8 9 " * 30,
    "ok",
]


def sample_records(lang: str) -> list[dict]:
    path = SAMPLE_DIR / f"{lang}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def first_sentence(text: str) -> str:
    """Up to and including the first sentence-final mark (., !, ?, 。, ！, ？)."""
    match = re.search(r".+?[.!?。！？](?=\s|$)", text) or re.search(r".+?[。！？]", text)
    return match.group(0).strip() if match else text.strip()


def write_raw_corpus(path: Path, langs: list[str], seed: int = 0) -> dict:
    """A crawl-like JSONL file: all paragraphs of ``langs`` shuffled, with duplicates, junk and bad lines."""
    rng = random.Random(seed)
    docs = [{"id": r["id"], "text": r["text"], "url": f"https://example.org/{r['lang']}/{r['id']}"}
            for lang in langs for r in sample_records(lang)]
    exact = [dict(d, id=d["id"] + "-copy") for d in rng.sample(docs, 6)]
    near = [dict(d, id=d["id"] + "-near", text=d["text"] + " ") for d in rng.sample(docs, 3)]
    junk = [{"id": f"junk-{i}", "text": text, "url": f"https://spam.example.com/{i}"} for i, text in enumerate(JUNK_PAGES)]
    records = docs + exact + near + junk
    rng.shuffle(records)
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    lines.insert(len(lines) // 2, '{"id": "broken", "text": "an unterminated record')
    lines.insert(len(lines) // 3, json.dumps({"id": "no-text", "title": "a record without a text field"}))
    write_text(path, "\n".join(lines) + "\n")
    return {"documents": len(records), "exact_copies": len(exact), "near_copies": len(near), "junk": len(junk), "malformed_lines": 2}


def _first_sentence_dialog(record: dict) -> dict:
    lang = record["lang"]
    return {
        "messages": [
            {"role": "user", "content": f"{FIRST_SENTENCE_INSTRUCTION[lang]}\n{record['text']}"},
            {"role": "assistant", "content": first_sentence(record["text"])},
        ],
        "lang": lang,
    }


def write_sft_data(directory: Path, langs: list[str], held_out: int = 6) -> dict:
    """train.jsonl / validation.jsonl of first-sentence dialogues; the last ``held_out`` paragraphs per language are held out."""
    train, validation = [], []
    for lang in langs:
        records = sample_records(lang)
        train += [_first_sentence_dialog(r) for r in records[:-held_out]]
        validation += [_first_sentence_dialog(r) for r in records[-held_out:]]
    write_jsonl(directory / "train.jsonl", train)
    write_jsonl(directory / "validation.jsonl", validation)
    return {"train": len(train), "validation": len(validation)}


def write_preference_data(directory: Path, langs: list[str], held_out: int = 6) -> dict:
    """Helpfulness pairs (answer in the prompt's language preferred) and safety pairs, train and held-out."""
    by_lang = {lang: sample_records(lang) for lang in langs}
    pairs = {"train": [], "validation": []}
    for lang in langs:
        other = next(o for o in langs if o != lang)
        for index, record in enumerate(by_lang[lang]):
            parallel = by_lang[other][index]
            pair = {
                "prompt": f"{FIRST_SENTENCE_INSTRUCTION[lang]}\n{record['text']}",
                "chosen": first_sentence(record["text"]),
                "rejected": first_sentence(parallel["text"]),
                "strength": "significantly_better",
                "lang": lang,
                "is_safety": False,
            }
            pairs["validation" if index >= len(by_lang[lang]) - held_out else "train"].append(pair)
    safety = [json.loads(line) for line in (RESOURCES / "demo" / "safety_pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    safety = [dict(p, is_safety=True) for p in safety if p["lang"] in langs]
    held = {p["id"].rsplit("-", 1)[0] for p in safety[-2 * len(langs):]}
    safety_train = [p for p in safety if p["id"].rsplit("-", 1)[0] not in held]
    safety_validation = [p for p in safety if p["id"].rsplit("-", 1)[0] in held]
    write_jsonl(directory / "helpful_train.jsonl", pairs["train"])
    write_jsonl(directory / "helpful_validation.jsonl", pairs["validation"])
    write_jsonl(directory / "safety_train.jsonl", safety_train)
    write_jsonl(directory / "safety_validation.jsonl", safety_validation)
    return {"helpful_train": len(pairs["train"]), "helpful_validation": len(pairs["validation"]),
            "safety_train": len(safety_train), "safety_validation": len(safety_validation)}


def write_prompts(path: Path, langs: list[str], per_lang: int = 8) -> int:
    """Prompts for rejection sampling and PPO: first-sentence instructions on held-out paragraphs."""
    prompts = []
    for lang in langs:
        for record in sample_records(lang)[-per_lang:]:
            prompts.append({"prompt": f"{FIRST_SENTENCE_INSTRUCTION[lang]}\n{record['text']}", "lang": lang})
    return write_jsonl(path, prompts)
