"""`polyglot-llama gatt`: Ghost Attention data (Llama 2 §3.3) and its per-turn instruction-following evaluation.

build (default): for each dialogue, sample an instruction from the constraint lists (hobby, answer language,
public figure; combined at random, ``short_fraction`` of them in the short form "Figure: Napoleon"), draw
its user turns from a prompt set, and sample every answer from the current model with the instruction
concatenated to *every* user turn. The training record keeps the instruction only in the first user turn
(or as the system prompt) and sets ``"loss_turns": "last"``: `sft` then zeroes the loss on every earlier
turn, answers included. Output: ``OUTPUT/gatt.jsonl`` for `polyglot-llama sft`.

eval: sample dialogues with the instruction only in turn 1 (as a GAtt-trained model is used) and report per
turn index how often the answer still follows it: answer-language constraints through the language-ID
model (answer language = requested language), hobby and figure constraints as the share of answers that
mention the value (a weak proxy, reported separately).

Constraint lists are JSON files, one category each (see resources/gatt/): ``{"category", "templates":
{lang: {"full": "... {value} ...", "short": "..."}}, "values": {lang: ["tennis", ...] or [{"text",
"answer_lang"}]}}``; directories given in ``constraints`` add values and templates to the bundled ones.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from ..chat import check_template_spec, encode_prompt, resolve_template
from ..config import to_dict, write_resolved_config
from ..errors import UserError
from ..io import RejectCounter, expand_inputs, iter_records, read_json, write_json, write_jsonl, write_text
from ..languages import normalize_language
from ..rlhf.generation import SamplingConfig, derive_seed, generate

log = logging.getLogger(__name__)

BUNDLED_CONSTRAINTS = Path(__file__).resolve().parents[1] / "resources" / "gatt"
SEPARATOR = "\n\n"  # between the instruction and the user message it is concatenated to


@dataclass
class GattConfig:
    model: str = ""
    """The current chat model (after RLHF in the paper): answers are sampled from it."""
    output: str = ""
    """Output directory: gatt.jsonl (build) or gatt_eval.json (eval), summary, rejects, resolved config."""
    prompts: list[str] = field(default_factory=list)
    """User turns: globs of JSONL/Parquet with 'prompt', 'text' or 'messages' (first user message) and optional 'lang'."""
    mode: Literal["build", "eval"] = "build"
    """build: write GAtt training data; eval: measure per-turn instruction following of the model."""
    tokenizer: str = ""
    """Tokenizer directory (default: the model directory)."""
    chat_template: str = ""
    """Chat template: '' = the tokenizer's own (Llama 2's format when it has none), 'llama2', or a Jinja template as a string or file path (as in `sft`)."""
    constraints: list[str] = field(default_factory=list)
    """Extra constraint directories (JSON files as in resources/gatt/) merged into the bundled lists."""
    dialogues: int = 1000
    """Dialogues to sample."""
    min_turns: int = 2
    """Fewest user turns per dialogue (build)."""
    max_turns: int = 5
    """Most user turns per dialogue; eval runs every dialogue for max_turns turns."""
    max_constraints: int = 2
    """An instruction combines 1..max_constraints constraints of different categories."""
    short_fraction: float = 0.5
    """Share of instructions written in the short form ("Figure: Napoleon") (Llama 2: half)."""
    instruction_in: Literal["first_turn", "system"] = "first_turn"
    """Where the training sample (and eval) keeps the instruction: prefixed to turn 1, or as the system prompt."""
    lang_field: str = "lang"
    """Language field of the prompt records; the instruction is written in the prompt's language."""
    default_lang: str = "en"
    """Language of prompts without a language field."""
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(max_new_tokens=256, temperature=0.7, top_p=0.9))
    require_language: bool = False
    """build: drop (and count) dialogues with an answer not in the language a language constraint asks for (LID)."""
    lid_model: str = ""
    """fastText language-ID model for eval and require_language (default: the cached lid.176.ftz)."""
    seed: int = 0
    """Seed of dialogue composition, instructions and sampling."""

    def __post_init__(self):
        if not self.model:
            raise UserError("key 'model' is required: the chat model whose answers are sampled")
        if not self.output:
            raise UserError("key 'output' is required: the directory to write to")
        if not self.prompts:
            raise UserError("key 'prompts' is required: globs of JSONL/Parquet files of user prompts")
        if not 1 <= self.min_turns <= self.max_turns:
            raise UserError(f"keys 'min_turns'/'max_turns' are {self.min_turns}/{self.max_turns}; need 1 ≤ min_turns ≤ max_turns")
        if self.dialogues < 1 or self.max_constraints < 1:
            raise UserError("keys 'dialogues' and 'max_constraints' must be at least 1")
        if not 0 <= self.short_fraction <= 1:
            raise UserError(f"key 'short_fraction' is {self.short_fraction}; it must be in [0, 1]")
        check_template_spec(self.chat_template)


# ----------------------------------------------------------------------------------------- constraints

def load_constraints(extra_dirs: list[str] = (), bundled: bool = True) -> dict[str, dict]:
    """{category: {"templates": {lang: {full, short}}, "values": {lang: [{"text", "answer_lang"?}]}}}."""
    dirs = ([BUNDLED_CONSTRAINTS] if bundled else []) + [Path(d) for d in extra_dirs]
    categories: dict[str, dict] = {}
    for directory in dirs:
        files = sorted(directory.glob("*.json")) if directory.is_dir() else []
        if not files:
            raise UserError(f"constraints directory {directory} has no *.json constraint lists")
        for path in files:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                name = doc.get("category", path.stem)
                entry = categories.setdefault(name, {"templates": {}, "values": {}})
                for lang, forms in doc.get("templates", {}).items():
                    if "{value}" not in forms["full"] or "{value}" not in forms["short"]:
                        raise KeyError("templates need 'full' and 'short' with a {value} placeholder")
                    entry["templates"][normalize_language(lang)] = {"full": forms["full"], "short": forms["short"]}
                for lang, values in doc.get("values", {}).items():
                    items = [v if isinstance(v, dict) else {"text": v} for v in values]
                    if not all(isinstance(v.get("text"), str) for v in items):
                        raise KeyError("each value is a string or an object with a 'text' string")
                    entry["values"].setdefault(normalize_language(lang), []).extend(items)
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                raise UserError(f"{path}: not a constraint list ({e}); see polyglot_llama/resources/gatt/*.json") from None
    return categories


@dataclass
class Instruction:
    text: str
    lang: str
    short: bool
    parts: list[dict]
    """One per constraint: {"category", "value", "answer_lang"?}."""


def sample_instruction(constraints: dict[str, dict], lang: str, rng: random.Random, max_constraints: int = 2,
                       short_fraction: float = 0.5) -> Instruction:
    """A random combination of constraints written in ``lang`` (English when ``lang`` has no templates)."""
    usable = sorted(c for c, e in constraints.items() if lang in e["templates"] and e["values"].get(lang))
    if not usable:
        lang = "en"
        usable = sorted(c for c, e in constraints.items() if "en" in e["templates"] and e["values"].get("en"))
    if not usable:
        raise UserError(f"no constraint list has templates and values for {lang!r} or 'en'")
    chosen = rng.sample(usable, rng.randint(1, min(max_constraints, len(usable))))
    short = rng.random() < short_fraction
    texts, parts = [], []
    for category in chosen:
        # "Answer in <the prompt's own language>" tests nothing: prefer another language when there is one.
        values = constraints[category]["values"][lang]
        values = [v for v in values if v.get("answer_lang") != lang] or values
        value = rng.choice(values)
        texts.append(constraints[category]["templates"][lang]["short" if short else "full"].format(value=value["text"]))
        parts.append({"category": category, "value": value["text"],
                      **({"answer_lang": value["answer_lang"]} if "answer_lang" in value else {})})
    return Instruction(", ".join(texts) if short else " ".join(texts), lang, short, parts)


# ----------------------------------------------------------------------------------------- dialogues

def load_prompts(files: list[str], rejects: RejectCounter, lang_field: str, default_lang: str) -> dict[str, list[str]]:
    """{lang: [user prompt, ...]} from records with 'prompt', 'text' or 'messages' (first user message)."""
    by_lang: dict[str, list[str]] = {}
    for path in files:
        for number, record in enumerate(iter_records([path], rejects, text_field=None), start=1):
            text = record.get("prompt") or record.get("text")
            if not text and isinstance(record.get("messages"), list):
                text = next((m.get("content") for m in record["messages"] if isinstance(m, dict) and m.get("role") == "user"), None)
            if not isinstance(text, str) or not text.strip():
                rejects.add(path, number, "no prompt", json.dumps(record, ensure_ascii=False, default=str))
                continue
            try:
                lang = normalize_language(record[lang_field]) if record.get(lang_field) else default_lang
            except UserError:
                rejects.add(path, number, "bad language code", json.dumps(record, ensure_ascii=False, default=str))
                continue
            by_lang.setdefault(lang, []).append(text.strip())
    return by_lang


def with_instruction(instruction: str, user: str) -> str:
    return f"{instruction}{SEPARATOR}{user}"


def sampling_messages(instruction: str, users: list[str], answers: list[str]) -> list[dict]:
    """The prompt for the next answer: the instruction concatenated to every user turn so far."""
    messages = []
    for i, user in enumerate(users):
        messages.append({"role": "user", "content": with_instruction(instruction, user)})
        if i < len(answers):
            messages.append({"role": "assistant", "content": answers[i]})
    return messages


def deployed_messages(instruction: str, users: list[str], answers: list[str], instruction_in: str) -> list[dict]:
    """The dialogue as trained and evaluated: the instruction only in turn 1 (or the system prompt)."""
    messages = [{"role": "system", "content": instruction}] if instruction_in == "system" else []
    for i, user in enumerate(users):
        first = i == 0 and instruction_in == "first_turn"
        messages.append({"role": "user", "content": with_instruction(instruction, user) if first else user})
        if i < len(answers):
            messages.append({"role": "assistant", "content": answers[i]})
    return messages


@dataclass
class Dialogue:
    index: int
    lang: str
    users: list[str]
    instruction: Instruction
    answers: list[str] = field(default_factory=list)
    failed: str = ""


def compose_dialogues(prompts: dict[str, list[str]], constraints: dict, cfg: GattConfig, fixed_turns: bool) -> list[Dialogue]:
    """Dialogues of user turns from one language's prompts, each with its instruction (seeded per dialogue)."""
    pool = [(lang, text) for lang, texts in sorted(prompts.items()) for text in texts]
    if not pool:
        raise UserError(f"{cfg.prompts}: no usable prompt")
    dialogues = []
    for index in range(cfg.dialogues):
        rng = random.Random(derive_seed(cfg.seed, "dialogue", index))
        lang = rng.choice(pool)[0]
        n_turns = cfg.max_turns if fixed_turns else rng.randint(cfg.min_turns, cfg.max_turns)
        texts = prompts[lang]
        users = rng.sample(texts, n_turns) if len(texts) >= n_turns else [rng.choice(texts) for _ in range(n_turns)]
        instruction = sample_instruction(constraints, lang, rng, cfg.max_constraints, cfg.short_fraction)
        dialogues.append(Dialogue(index, lang, users, instruction))
    return dialogues


def sample_answers(dialogues: list[Dialogue], model, tokenizer, template, sampling: SamplingConfig, seed: int,
                   prompt_messages: Callable[[Dialogue, int], list[dict]], model_path: str | None = None,
                   start_turn: int = 0, on_turn_done: Callable[[int], None] | None = None) -> None:
    """Fill ``answers`` turn by turn; each turn is one batched generation over the dialogues still going.

    ``prompt_messages(dialogue, turn)`` gives the messages up to user turn ``turn`` (0-based) with the
    answers so far. The seed of each answer depends only on (seed, dialogue, turn), not on the batch, so a
    run resumed at ``start_turn`` writes what an uninterrupted one would. ``on_turn_done(turns)`` runs after
    each turn (to save progress).
    """
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None) or float("inf")
    for turn in range(start_turn, max(len(d.users) for d in dialogues)):
        active = [d for d in dialogues if not d.failed and turn < len(d.users)]
        prompts = []
        for d in list(active):
            ids = encode_prompt(prompt_messages(d, turn), tokenizer, template)
            if len(ids) + sampling.max_new_tokens > context:  # the dialogue no longer fits the model's context
                d.failed = f"longer than the model context ({context} tokens)"
                active.remove(d)
            else:
                prompts.append(ids)
        if not active:
            break
        seeds = [derive_seed(seed, "answer", d.index, turn) for d in active]
        log.info("gatt: sampling turn %d for %d dialogues", turn + 1, len(active))
        for d, out in zip(active, generate(model, tokenizer, prompts, sampling, seeds, model_path=model_path)):
            if out.text.strip():
                d.answers.append(out.text.strip())
            else:
                d.failed = f"empty answer at turn {turn + 1}"
        if on_turn_done is not None:
            on_turn_done(turn + 1)


def training_record(dialogue: Dialogue, instruction_in: str) -> dict:
    """The GAtt training sample: instruction in turn 1 (or system) only, loss on the last answer only."""
    inst = dialogue.instruction
    return {
        "messages": deployed_messages(inst.text, dialogue.users, dialogue.answers, instruction_in),
        "loss_turns": "last",
        "lang": dialogue.lang,
        "gatt": {"instruction": inst.text, "instruction_lang": inst.lang, "short": inst.short,
                 "constraints": inst.parts, "turns": len(dialogue.users), "instruction_in": instruction_in},
    }


# ----------------------------------------------------------------------------------------- evaluation

def language_followed(dialogue: Dialogue, predict_lang: Callable[[str], str]) -> bool:
    """Every answer is in the language each of the dialogue's language constraints asks for."""
    wanted = {p["answer_lang"] for p in dialogue.instruction.parts if "answer_lang" in p}
    return all(predict_lang(answer) == lang for lang in wanted for answer in dialogue.answers)


def _language_predictor(path: str) -> Callable[[str], str]:
    from ..corpus.lid import load_lid_model, predict_language

    lid = load_lid_model(path or None)
    return lambda text: predict_language(lid, text)[0]


def _rate(followed: int, total: int) -> dict:
    return {"answers": total, "followed": followed, "rate": followed / total if total else None}


def follow_rates(dialogues: list[Dialogue], predict_lang: Callable[[str], str]) -> list[dict]:
    """Per turn index: share of answers in the requested language, and share mentioning the hobby/figure."""
    n_turns = max((len(d.answers) for d in dialogues), default=0)
    table = []
    for turn in range(n_turns):
        lang_ok = lang_n = mention_ok = mention_n = 0
        for d in dialogues:
            if turn >= len(d.answers):
                continue
            answer = d.answers[turn]
            for part in d.instruction.parts:
                if "answer_lang" in part:
                    lang_n += 1
                    lang_ok += predict_lang(answer) == part["answer_lang"]
                else:
                    mention_n += 1
                    mention_ok += part["value"].casefold() in answer.casefold()
        table.append({"turn": turn + 1, "language": _rate(lang_ok, lang_n), "mention": _rate(mention_ok, mention_n)})
    return table


def _report(table: list[dict]) -> str:
    lines = ["| turn | answer language followed | answers | mentions hobby/figure | answers |", "|---:|---:|---:|---:|---:|"]
    fmt = lambda r: "n/a" if r["rate"] is None else f"{100 * r['rate']:.1f} %"  # noqa: E731
    for row in table:
        lines.append(f"| {row['turn']} | {fmt(row['language'])} | {row['language']['answers']} | "
                     f"{fmt(row['mention'])} | {row['mention']['answers']} |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------- stage

def _load_model(cfg: GattConfig):
    from ..model.checkpoint import check_vocab_matches, load_causal_lm, load_tokenizer
    from ..runtime import frozen_dtype, pick_device

    tokenizer_dir = cfg.tokenizer or cfg.model
    tokenizer = load_tokenizer(tokenizer_dir)
    device = pick_device()  # sampling only: bf16 where the GPU supports it (the runtime's rule), else fp32
    model = load_causal_lm(cfg.model, dtype=frozen_dtype(device))
    check_vocab_matches(model, tokenizer, cfg.model, tokenizer_dir)
    return model.to(device).eval(), tokenizer, tokenizer_dir


def run(cfg: GattConfig) -> dict:
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    write_resolved_config(cfg, output, "gatt")
    constraints = load_constraints(cfg.constraints)
    rejects = RejectCounter()
    prompts = load_prompts(expand_inputs(cfg.prompts), rejects, cfg.lang_field, cfg.default_lang)
    dialogues = compose_dialogues(prompts, constraints, cfg, fixed_turns=cfg.mode == "eval")
    model, tokenizer, tokenizer_dir = _load_model(cfg)
    template = resolve_template(cfg.chat_template, tokenizer, tokenizer_dir)
    # Load language ID before sampling: a missing model should fail in seconds, not after hours of sampling.
    predict = _language_predictor(cfg.lid_model) if cfg.mode == "eval" or cfg.require_language else None

    if cfg.mode == "build":
        prompt_messages = lambda d, t: sampling_messages(d.instruction.text, d.users[:t + 1], d.answers)  # noqa: E731
    else:
        prompt_messages = lambda d, t: deployed_messages(d.instruction.text, d.users[:t + 1], d.answers, cfg.instruction_in)  # noqa: E731
    progress = _Progress(output / f"gatt_{cfg.mode}_progress.json", json.loads(json.dumps(to_dict(cfg))), dialogues)
    sample_answers(dialogues, model, tokenizer, template, cfg.sampling, cfg.seed, prompt_messages, model_path=cfg.model,
                   start_turn=progress.restore(), on_turn_done=progress.save)
    if cfg.mode == "build" and cfg.require_language:
        for d in dialogues:
            if not d.failed and not language_followed(d, predict):
                d.failed = "answer not in the requested language"
    for d in dialogues:
        if d.failed:
            reason = "empty answer" if d.failed.startswith("empty answer") else d.failed  # one count per kind
            rejects.add("sampling", d.index, reason, json.dumps(training_record(d, cfg.instruction_in), ensure_ascii=False))
    kept = [d for d in dialogues if not d.failed]
    write_jsonl(output / "rejected_records.jsonl", rejects.rejected)
    summary = {
        "output": str(output), "mode": cfg.mode, "dialogues": len(kept), "rejected": rejects.by_reason(),
        "languages": _count(d.lang for d in kept), "short_instructions": sum(d.instruction.short for d in kept),
        "constraints": _count(p["category"] for d in kept for p in d.instruction.parts),
    }
    if cfg.mode == "build":
        summary["file"] = str(output / "gatt.jsonl")
        write_jsonl(output / "gatt.jsonl", (training_record(d, cfg.instruction_in) for d in kept))
    else:
        table = follow_rates(kept, predict)
        summary["per_turn"] = table
        write_jsonl(output / "gatt_eval_dialogues.jsonl", (training_record(d, cfg.instruction_in) for d in kept))
        write_text(output / "gatt_eval.md", "# Instruction following per turn (GAtt eval)\n\n" + _report(table))
    write_json(output / f"gatt_{cfg.mode}_summary.json", summary)
    progress.path.unlink(missing_ok=True)
    return summary


@dataclass
class _Progress:
    """Sampled answers saved after every turn, so an interrupted run continues where it stopped."""

    path: Path
    config: dict
    dialogues: list[Dialogue]

    def restore(self) -> int:
        if not self.path.is_file():
            return 0
        state = read_json(self.path)
        if state.get("config") != self.config or len(state.get("dialogues", [])) != len(self.dialogues):
            log.warning("gatt: %s is from a different config; starting over", self.path)
            return 0
        for d, saved in zip(self.dialogues, state["dialogues"]):
            d.answers, d.failed = saved["answers"], saved["failed"]
        log.info("gatt: resuming after turn %d (%s)", state["turns_done"], self.path)
        return state["turns_done"]

    def save(self, turns_done: int) -> None:
        write_json(self.path, {"config": self.config, "turns_done": turns_done,
                               "dialogues": [{"answers": d.answers, "failed": d.failed} for d in self.dialogues]})


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))
