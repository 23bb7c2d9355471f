"""Where an extended model's extra bits per byte come from: predicting new tokens (output rows) or reading them
(input rows).

    python bench/bench_extend_diagnosis.py --extended runs/smollm2-ko --base ~/.cache/polyglot_llama/real/smollm2 \
        [--lang ko] [--input-side-docs 1]

``--extended`` is a `model extend` output (its tokenizer and new_tokens.json), ``--base`` the original model.
Held-out text: the bundled sample's paragraphs 41-48, 200 characters each (as bench_extend_real.py and
tests/real). Prints, in bits per byte of the same text:

* coverage: how many tokens and bytes the new tokens take;
* original: the original model (old tokenizer);
* output side only: the original model's states (perfect reading of the old pieces), each new-tokenizer token
  scored over the extended vocabulary from the state before its first old piece;
* input side only (first ``--input-side-docs`` documents, one forward per token): the new tokens read, but
  each token's bytes scored as the original's old pieces, chained, after the new tokens before it;
* extended: the extended model on the new tokenization, split by target (new token, old token right after a
  new one, other old token) beside what the original model spends on the same bytes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from _checkout import use_checkout

ROOT = use_checkout()
SAMPLE = ROOT / "polyglot_llama" / "resources" / "sample_text"
TRAIN, HELD_OUT, CHARS = 40, 8, 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extended", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--lang", default="ko")
    parser.add_argument("--input-side-docs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from tokenizers import Tokenizer

    from polyglot_llama.model.bits_per_byte import context_token
    from polyglot_llama.model.checkpoint import load_causal_lm
    from polyglot_llama.model.distill_init import align_spans

    torch.set_num_threads(args.threads)
    extended_dir = Path(args.extended)
    old = Tokenizer.from_file(str(Path(args.base) / "tokenizer.json"))
    new = Tokenizer.from_file(str(extended_dir / "tokenizer.json"))
    old_size = json.loads((extended_dir / "new_tokens.json").read_text())["old_vocab_size"]
    spelling = {i: t for t, i in new.get_vocab(with_added_tokens=True).items()}
    pieces_of = lambda i: [i] if i < old_size else [t.id for t in old.model.tokenize(spelling[i])]  # noqa: E731
    model = load_causal_lm(extended_dir).eval()
    context = context_token(old)
    lines = (SAMPLE / f"{args.lang}.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [json.loads(line)["text"][:CHARS] for line in lines[TRAIN:TRAIN + HELD_OUT]]

    nats = dict.fromkeys(("original", "output side", "extended"), 0.0)
    by_target = {k: [0.0, 0.0] for k in ("new token", "old token after a new one", "other old token")}  # [extended, original]
    input_side = [0.0, 0.0, 0]  # [input side only, original, bytes] over the first documents
    n_bytes = n_old = n_new = n_added = covered = 0
    with torch.no_grad():
        for d, text in enumerate(texts):
            old_ids = old.encode(text, add_special_tokens=False).ids
            new_ids = new.encode(text, add_special_tokens=False).ids
            spans = align_spans(old_ids, new_ids, pieces_of)
            size = len(text.encode("utf-8"))
            n_bytes, n_old, n_new = n_bytes + size, n_old + len(old_ids), n_new + len(new_ids)
            n_added += sum(i >= old_size for i in new_ids)
            covered += sum(len(spelling[i]) for i in new_ids if i >= old_size)  # byte-level BPE: one character per byte
            teacher = model(input_ids=torch.tensor([[context] + old_ids])).logits[0].float()  # [1 + L, V_ext]
            extended_lp = torch.log_softmax(teacher, -1)
            original_lp = torch.log_softmax(teacher[:, :old_size], -1)
            per_old = -original_lp[:-1].gather(-1, torch.tensor(old_ids)[:, None])[:, 0]  # [L] nats per old token
            nats["original"] += per_old.sum().item()
            nats["output side"] -= sum(extended_lp[s, j].item() for (s, _), j in zip(spans, new_ids))
            student = torch.log_softmax(model(input_ids=torch.tensor([[context] + new_ids])).logits[0, :-1].float(), -1)
            per_new = -student.gather(-1, torch.tensor(new_ids)[:, None])[:, 0]  # [N]
            nats["extended"] += per_new.sum().item()
            for k, ((s, e), j) in enumerate(zip(spans, new_ids)):
                kind = ("new token" if j >= old_size else
                        "old token after a new one" if k and new_ids[k - 1] >= old_size else "other old token")
                by_target[kind][0] += per_new[k].item()
                by_target[kind][1] += per_old[s:e].sum().item()
            if d < args.input_side_docs:
                for k, (s, e) in enumerate(spans):  # new tokens before token k, then its old pieces
                    ids = [context] + new_ids[:k] + old_ids[s:e]
                    lp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0, :, :old_size].float(), -1)
                    input_side[0] -= sum(lp[q - 1, ids[q]].item() for q in range(k + 1, len(ids)))
                input_side[1] += per_old.sum().item()
                input_side[2] += size

    bpb = lambda value, size=n_bytes: value / size / math.log(2)  # noqa: E731
    print(f"held-out {args.lang}: {n_bytes} bytes, {n_old} old tokens, {n_new} new-tokenizer tokens of which "
          f"{n_added} new ({100 * n_added / n_new:.1f} %), covering {100 * covered / n_bytes:.1f} % of the bytes")
    print("bits per byte: " + ", ".join(f"{k} {bpb(v):.3f}" for k, v in nats.items()))
    if input_side[2]:
        print(f"first {args.input_side_docs} document(s): input side only {bpb(input_side[0], input_side[2]):.3f}, "
              f"original {bpb(input_side[1], input_side[2]):.3f}")
    for kind, (extended, original) in by_target.items():
        print(f"  {kind:26} extended {bpb(extended):.3f}  original on the same bytes {bpb(original):.3f}")


if __name__ == "__main__":
    main()
