"""Bits per byte on SmolLM2-135M-Instruct: original → `model extend` → new-rows-only training, as a curve.

    python bench/bench_extend_real.py [--korean sample|law|mixed] [--init distill] [--init-steps 480]
        [--init-max-tokens 200000] [--init-average-last 0.5] [--untie-head] [--init-hidden-weight 1] [--steps 300] [--lr 3e-3 1e-2]
        [--fit-faq] [--stage-text fit|faq] [--seq-len 64] [--batch 4] [--grad-accum 1] [--warmup-steps 2] [--probe-every 50]
        [--threads 2] [--work runs/bench-extend-mixed]

Text (``--korean sample``): the bundled parallel samples, Korean paragraphs 1-40 to learn 300 tokens from (and,
for init distill, to distil on), 41-60 held out (the first 8, 200 characters each, as tests/real); ``--korean
law``: real Korean from tests/real_text.py (``korean_law``); ``--korean mixed``: that and four more genres
(``korean_mixed``), held-out bits per byte also per genre. Training: that Korean with 25 % English replay
(sample paragraphs 1-40) and, with ``--stage-text faq``, 13 chapters of the Korean Debian FAQ besides (a genre the
fit never read; the other 3 held out), ``--steps`` optimizer steps of ``--grad-accum`` micro-batches of ``--batch`` x
``--seq-len`` tokens, training only the new rows (``--warmup-steps`` warm-up steps, cosine to 0.1 x lr, pretrain's
defaults otherwise). The tokenizer, the extended model and the mixture are made once; each ``--lr`` is one training
run from the same extended model. With ``--work DIR`` the tokenizer and model are kept in DIR, and a later run with
the same DIR starts from them instead of extending again; it must give the same ``--korean`` and extend options,
or it stops with a one-line error (the mixture is drawn again for each run's stage text and steps). Prints, per language, the bits per byte of the original model, after extend and
after every ``--probe-every`` steps of each run, with the ratio to the original. Measured
(docs/real-checkpoints.md) with model extend's defaults (480 fit steps, the rows averaged over the last half):
sample, Korean 2.436 → 2.651 after extend → 2.745 after 300 steps at lr 3e-3 (not below the original); mixed, all
held-out Korean 2.063 → 1.978 → 2.000 (below; 1.982 at lr 1e-3, 1.984 at 3e-4), law 2.403 → 2.166 and the user guide 1.640 → 1.492 after extend,
the tutorial and the news article 4 and 9 % above after extend; ``--stage-text faq --steps 900 --lr 1e-3``, the
held-out FAQ chapters 1.942 → 2.167 after extend → 1.917 (0.987) at 900 steps, all held-out Korean 0.915; with
``--fit-faq --init-max-tokens 300000``, the FAQ 1.927 (0.992) and all held-out Korean 1.954 (0.947) after extend. With the
240-step last rows before: law, 2.421 →
2.316 → 2.144 (below). Needs the cached
checkpoint (python tests/real/real_checkpoints.py smollm2)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import _checkout
from _checkout import use_checkout

ROOT = use_checkout()
REAL = Path.home() / ".cache" / "polyglot_llama" / "real" / "smollm2"
SAMPLE = ROOT / "polyglot_llama" / "resources" / "sample_text"
TRAIN, HELD_OUT, CHARS = 40, 8, 200


def records(lang: str) -> list[dict]:
    return [json.loads(line) for line in (SAMPLE / f"{lang}.jsonl").read_text(encoding="utf-8").splitlines()]


def write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def cut(text: str, chars: int, most: int | None = None) -> list[str]:
    """Consecutive ``chars``-character records of ``text`` (at most ``most``; a shorter rest dropped)."""
    records = [text[k:k + chars] for k in range(0, len(text) - chars + 1, chars)]
    return records if most is None else records[:most]


def korean_law(held_out: tuple[str, ...] = ("1809894", "1809895", "kss-news-uv"), chars: int = 400
               ) -> tuple[list[dict], list[dict], int]:
    """Real Korean (tests/real_text.py: KoNLPy's constitution and ten bills, kss's four texts): the training
    records, the held-out records (the held-out documents cut into ``chars``-character records, a shorter rest
    dropped) and ``chars``. Held out: two bills and a news article that share no 40-character window with the
    other documents (bill 1809893 shares 71 % of its windows with 1809890-92, the same member's package of
    bills, and is not a fair held-out text)."""
    real_text = _checkout.real_text()
    docs = real_text.korean() + real_text.korean_kss()
    train = [{"text": d["text"], "lang": "ko"} for d in docs if d["id"] not in held_out]
    val = [{"text": t, "lang": "ko"} for d in docs if d["id"] in held_out for t in cut(d["text"], chars)]
    return train, val, chars


def korean_mixed(chars: int = 400, per_document: int = 6) -> tuple[list[dict], dict[str, list[str]], int]:
    """Real Korean in five genres (tests/real_text.py; 121,284 characters to learn from, in this order): KoNLPy's
    constitution and bills, kss's news texts, the Korean MATE user guide, the Korean Emacs tutorial and the Universal
    Declaration of Human Rights. The training records, the held-out texts per genre (``chars``-character records, at
    most ``per_document`` from a document) and ``chars``. Held out: the law and news documents ``korean_law`` holds
    out, the guide's section on applications, and the last quarter of the tutorial (its paragraphs; the first three
    quarters are training text). model extend's default ``init_max_tokens`` (200,000 old tokens) reads 107,247 of the
    characters: not the second half of the tutorial's training part, nor the declaration."""
    real_text = _checkout.real_text()
    tutorial = real_text.korean_tutorial()[0]["text"].split("\n\n")
    quarter = 3 * len(tutorial) // 4
    genres = {"law": real_text.korean(), "news": real_text.korean_kss(), "guide": real_text.korean_user_guide(),
              "tutorial": [{"id": "tutorial-1", "text": "\n\n".join(tutorial[:quarter])},
                           {"id": "tutorial-2", "text": "\n\n".join(tutorial[quarter:])}],
              "declaration": real_text.korean_declaration()}
    held = {"1809894", "1809895", "kss-news-uv", "mate-guide-ko-overview-applications", "tutorial-2"}
    train = [{"text": d["text"], "lang": "ko"} for docs in genres.values() for d in docs if d["id"] not in held]
    val = {genre: [t for d in docs if d["id"] in held for t in cut(d["text"], chars, per_document)]
           for genre, docs in genres.items()}
    return train, {genre: texts for genre, texts in val.items() if texts}, chars


FAQ_HELD_OUT = ("debian-faq-ko-software", "debian-faq-ko-support", "debian-faq-ko-uptodate")


def korean_faq_split(chars: int = 400, per_document: int = 6) -> tuple[list[dict], list[str]]:
    """The Korean Debian FAQ (tests/real_text.py ``korean_faq``, a genre none of ``korean_mixed``'s): the stage's
    records (13 chapters, 35,956 characters) and the held-out texts (``chars``-character records, at most
    ``per_document`` from each of the chapters on software, support and keeping up to date: 18)."""
    docs = _checkout.real_text().korean_faq()
    train = [{"text": d["text"], "lang": "ko"} for d in docs if d["id"] not in FAQ_HELD_OUT]
    held = [t for d in docs if d["id"] in FAQ_HELD_OUT for t in cut(d["text"], chars, per_document)]
    return train, held


def held_out_bpb(model, tokenizer, held_out: dict[str, list[str]]) -> dict[str, float]:
    from polyglot_llama.model.bits_per_byte import bits_per_byte

    # the texts are cut already (200 or 400 characters); none is cut again
    return {lang: bits_per_byte(model, tokenizer, texts, max(map(len, texts))) for lang, texts in held_out.items()}


# the options that decide the tokenizer and the extended model a --work folder keeps
KEPT_OPTIONS = ("korean", "fit_faq", "init", "untie_head", "init_hidden_weight", "init_steps", "init_max_tokens",
                "init_average_last")


def kept_work_clash(kept: dict, wanted: dict) -> str:
    """Why a --work folder made with ``kept`` options cannot serve a run with ``wanted`` ones ('' if it can): every
    kept option must match."""
    return "; ".join(f"--{key.replace('_', '-')} {kept.get(key)!r}, not {wanted[key]!r}" for key in KEPT_OPTIONS
                     if kept.get(key) != wanted[key])


def before_and_after(work: Path, held_out: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    """Bits per byte of the original model and of ``work``'s extended one, each with its own tokenizer."""
    from tokenizers import Tokenizer

    from polyglot_llama.model.checkpoint import load_causal_lm

    before = held_out_bpb(load_causal_lm(REAL), Tokenizer.from_file(str(REAL / "tokenizer.json")), held_out)
    after = held_out_bpb(load_causal_lm(work / "ext"), Tokenizer.from_file(str(work / "tok" / "tokenizer.json")), held_out)
    return {key: (before[key], after[key]) for key in held_out}


def probing_stages(pretrain, every: int, probe, curve: list):
    """Patch pretrain's prepare_stage so that, after every ``every``-th optimizer step (the old rows already
    restored), ``curve`` gets (step, probe(model)): bits per byte during one run, not one run per length."""
    prepare = pretrain.prepare_stage

    def prepare_with_probe(model, stage, new_ids):
        plan = prepare(model, stage, new_ids)
        restore_old_rows, steps = plan.after_optimizer_step, 0

        def after_step(prepared) -> None:
            nonlocal steps
            restore_old_rows(prepared)
            steps += 1
            if steps % every == 0:
                curve.append((steps, probe(prepared)))
                print(f"step {steps}: held-out bits per byte {curve[-1][1]}", flush=True)  # kept if the run is cut short

        plan.after_optimizer_step = after_step
        return plan

    return mock.patch.object(pretrain, "prepare_stage", prepare_with_probe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", default="distill")
    parser.add_argument("--untie-head", action="store_true", help="model extend --untie-head true")
    parser.add_argument("--init-hidden-weight", type=float, default=0.0)
    parser.add_argument("--init-steps", type=int, default=None, help="distill fit steps (default: model extend's)")
    parser.add_argument("--init-max-tokens", type=int, default=None, help="distill text budget (default: model extend's)")
    parser.add_argument("--init-average-last", type=float, default=None,
                        help="share of the fit's last steps whose rows are averaged, 0 = last rows (default: model extend's)")
    parser.add_argument("--korean", choices=["sample", "law", "mixed"], default="sample",
                        help="sample: the bundled paragraphs (1-40 train, 41-48 held out, 200 characters each); law: "
                             "KoNLPy's constitution and bills with kss's texts (tests/real_text.py), bills 1809894 and "
                             "1809895 and kss's news article held out as 7 records of 400 characters; mixed: those and "
                             "the Korean Emacs tutorial, MATE user guide and UDHR, held out per genre (korean_mixed)")
    parser.add_argument("--stage-text", choices=["fit", "faq"], default="fit",
                        help="fit: the new-rows stage reads the Korean the tokens were learnt and fitted on; faq: that "
                             "and 13 chapters of the Korean Debian FAQ, a genre the fit never read, the other three "
                             "held out as 'ko faq' (korean_faq_split)")
    parser.add_argument("--fit-faq", action="store_true",
                        help="model extend's --init-text also has the 13 FAQ chapters (after the --korean text; with "
                             "--korean mixed give --init-max-tokens 300000 for the fit to read both, 290k old tokens); "
                             "the other three held out as 'ko faq'")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, nargs="+", default=[3e-3], help="peak lr of the new-rows stage; one run each")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4, help="rows of --seq-len tokens per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--warmup-steps", type=int, default=2, help="linear warm-up of the new-rows stage, in steps")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the tokenizer and extended model here; reuse them if already there")
    parser.add_argument("--probe-every", type=int, default=50, help="held-out bits per byte every N steps (and at the end)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from tokenizers import Tokenizer

    from polyglot_llama.config import load_config
    from polyglot_llama.corpus.mix import MixConfig, run as mix
    from polyglot_llama.model.checkpoint import load_causal_lm
    from polyglot_llama.model.extend import ModelExtendConfig, run as extend_model
    from polyglot_llama.tokenizer.extend import TokenizerExtendConfig, run as extend_tokenizer
    from polyglot_llama.train import pretrain

    torch.set_num_threads(args.threads)
    tokens_per_step = args.grad_accum * args.batch * args.seq_len
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench_extend_") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        made = work / "bench_extend.json"  # the options the kept tokenizer and model were made with
        made_with = {key: getattr(args, key) for key in KEPT_OPTIONS}
        reuse = made.is_file() and (work / "ext" / "new_tokens.json").is_file()
        if reuse and (clash := kept_work_clash(json.loads(made.read_text()), made_with)):
            sys.exit(f"bench: {work} holds a model made with other options ({clash}); use another --work")
        ko, en = records("ko"), records("en")
        ko_train, ko_val, chars = ko[:TRAIN], ko[TRAIN:], CHARS
        genres: dict[str, list[str]] = {}  # --korean mixed: held-out texts per genre, also scored apart
        if args.korean == "law":
            ko_train, ko_val, chars = korean_law()
        if args.korean == "mixed":
            ko_train, genres, chars = korean_mixed()
            ko_val = [{"text": t, "lang": "ko"} for texts in genres.values() for t in texts]
        held_out = {"ko": [r["text"][:chars] for r in (ko_val if genres else ko_val[:HELD_OUT])],
                    **{f"ko {genre}": texts for genre, texts in genres.items()},
                    "en": [r["text"][:CHARS] for r in en[TRAIN:TRAIN + HELD_OUT]]}
        faq = []  # 13 FAQ chapters: the stage also reads them with --stage-text faq, the fit with --fit-faq
        if args.stage_text == "faq" or args.fit_faq:
            faq, held_out["ko faq"] = korean_faq_split()
        paths = {"ko_train": write(work / "ko_train.jsonl", ko_train), "en_train": write(work / "en_train.jsonl", en[:TRAIN]),
                 "ko_val": write(work / "ko_val.jsonl", ko_val), "en_val": write(work / "en_val.jsonl", en[TRAIN:]),
                 "ko_faq": write(work / "ko_faq.jsonl", faq)}
        if reuse:  # the extended model of an earlier run; both models scored here, as model extend does
            print(f"reusing {work}/tok and ext, made with the same options")
            report = before_and_after(work, held_out)
        else:
            extend_tokenizer(TokenizerExtendConfig(base=str(REAL), input=[paths["ko_train"]], new_tokens=300, lang="ko",
                                                   output=str(work / "tok")))
            extended = extend_model(ModelExtendConfig(
                model=str(REAL), tokenizer=str(work / "tok"), output=str(work / "ext"), init=args.init,
                init_text=[paths["ko_train"]] + [paths["ko_faq"]] * args.fit_faq if args.init == "distill" else [],
                untie_head=args.untie_head,
                init_hidden_weight=args.init_hidden_weight,
                **({} if args.init_steps is None else {"init_steps": args.init_steps}),
                **({} if args.init_max_tokens is None else {"init_max_tokens": args.init_max_tokens}),
                **({} if args.init_average_last is None else {"init_average_last": args.init_average_last}),
                eval_text=[write(work / "ko_eval.jsonl", [{"text": t, "lang": "ko"} for t in held_out["ko"]]),
                           write(work / "en_eval.jsonl", [{"text": t, "lang": "en"} for t in held_out["en"]])],
                eval_max_records=max(HELD_OUT, len(held_out["ko"])), eval_max_chars=max(chars, CHARS)))
            report = {lang: (values["before"], values["after"]) for lang, values in extended["bits_per_byte"].items()}
            if unreported := {key: texts for key, texts in held_out.items() if key not in report}:
                report.update(before_and_after(work, unreported))  # model extend reports per language: genres, FAQ here
            print(f"init {args.init} (untied head {extended['untied_head']}, hidden weight {args.init_hidden_weight}); "
                  f"extend {time.time() - started:.0f} s")
            made.write_text(json.dumps(made_with) + "\n")
        shutil.rmtree(work / "mix", ignore_errors=True)  # drawn afresh for this run's stage text and steps
        mix(load_config(MixConfig, overrides={
            "tokenizer": str(work / "tok"), "output": str(work / "mix"), "total_tokens": tokens_per_step * args.steps + 4000,
            "sources": [{"name": "ko", "lang": "ko", "paths": [paths["ko_train"]] + [paths["ko_faq"]] * (args.stage_text == "faq")},
                        {"name": "en", "lang": "en", "paths": [paths["en_train"]]}],
            "replay.lang": "en", "replay.share": 0.25}))
        tokenizer = Tokenizer.from_file(str(work / "tok" / "tokenizer.json"))
        for lr in args.lr:
            run_started, curve, output = time.time(), [], work / f"cpt-lr{lr:g}-warmup{args.warmup_steps}"
            shutil.rmtree(output, ignore_errors=True)  # a kept --work folder: start afresh, never resume an old run
            with probing_stages(pretrain, args.probe_every, lambda model: held_out_bpb(model, tokenizer, held_out), curve):
                pretrain.run(load_config(pretrain.PretrainConfig, None, {
                    "model": str(work / "ext"), "output": str(output),
                    "data.train": [str(work / "mix" / "mixture" / "*.jsonl.gz")], "data.validation": [paths["ko_val"]],
                    "data.seq_len": args.seq_len, "loop.micro_batch_size": args.batch,
                    "loop.grad_accum": args.grad_accum, "loop.log_every": 10,
                    "loop.save_every": 0, "loop.max_eval_batches": 4, "schedule.warmup_steps": args.warmup_steps,
                    "stages": [{"name": "new-rows", "trainable": "new_embeddings", "steps": args.steps, "lr": lr}]}))
            if not curve or curve[-1][0] != args.steps:
                curve.append((args.steps, held_out_bpb(load_causal_lm(output), tokenizer, held_out)))
            print(f"lr {lr:g}: {args.steps} new-rows steps of {args.grad_accum} x {args.batch} x {args.seq_len} tokens, "
                  f"{time.time() - run_started:.0f} s (probes included)")
            print("step   " + "  ".join(f"{key + ' bpb':>13}  (ratio)" for key in held_out))
            rows = [("orig", {key: report[key][0] for key in held_out}),
                    ("ext", {key: report[key][1] for key in held_out})] + curve
            for step, bpb in rows:
                print(f"{step!s:5}  " + "  ".join(f"{bpb[key]:13.3f}  ({bpb[key] / report[key][0]:.3f})"
                                                 for key in held_out), flush=True)
        print(f"total {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
