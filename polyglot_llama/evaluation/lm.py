"""A causal LM under evaluation behind three operations: continuation log-likelihoods, rolling NLL, greedy answers.

Every likelihood-based task reduces to `loglikelihoods`: the summed log-probability of continuation tokens
given context tokens. Perplexity scores a long text as disjoint continuation windows (`rolling_nll`);
multiple choice scores each choice as a continuation of the question. One primitive, one place to batch.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from ..errors import UserError
from ..progress import phase
from ..runtime import pick_device, weights_dtype


@dataclass
class Runtime:
    """How to run a checkpoint; everything here except batch_size can change the numbers (so it is fingerprinted)."""

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    max_length: int = 0
    """0 = the model's max_position_embeddings."""

    def torch_device(self) -> torch.device:
        return pick_device(self.device)

    def device_map(self) -> str | None:
        """Spread a model over all visible GPUs when there are several (a 70B model fits no single GPU)."""
        return "auto" if self.device == "auto" and torch.cuda.device_count() > 1 else None

    def torch_dtype(self) -> torch.dtype:
        """'auto': the runtime's frozen dtype (bf16 on GPUs that support it, fp32 on CPUs, where bf16 is
        25-40× slower on AVX2)."""
        return weights_dtype(self.dtype, self.torch_device())


class LanguageModel:
    """A loaded causal LM + tokenizer, with the scoring operations the tasks need."""

    def __init__(self, model, tokenizer, runtime: Runtime):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.runtime = runtime
        self.device = next(model.parameters()).device  # inputs go where the embeddings are (first shard)
        limit = getattr(model.config, "max_position_embeddings", 4096)
        self.max_length = min(runtime.max_length or limit, limit)
        self.prefix_ids = default_prefix(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # A prefix pass needs no logits; models that take logits_to_keep compute just one position.
        parameters = inspect.signature(model.forward).parameters
        self._no_logits = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}
        self._cache_arg = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` as the tokenizer encodes it by default: with the special tokens it puts before
        text (Llama 2: BOS; GPT-2, SmolLM2: none), never a trailing EOS (a scored text goes on)."""
        return self.prefix_ids + self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def split_continuation(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) split as lm-evaluation-harness does, so the numbers agree with it.

        Trailing spaces of the context move to the continuation; the joined text is encoded and cut after as
        many tokens as the context alone encodes to. The context ids are ``encode(context)``, the same for
        every continuation of one context (which lets multiple choice run the context once).
        """
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        ctx = self.encode(context)
        if not ctx:  # no text and no BOS: condition on BOS (or EOS), as the harness does
            ctx = [self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id]
            return ctx, self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        return ctx, self.encode(context + continuation)[len(ctx):]

    @torch.no_grad()
    def loglikelihoods(self, requests: list[tuple[list[int], list[int]]], desc: str = "score") -> list[float]:
        """Σ log p(continuation token | everything before it), in nats, for each (context, continuation) pair.

        The context must be non-empty. Inputs longer than max_length keep their last
        max_length tokens: the continuation first, then as much context as fits.
        """
        out = [0.0] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: -(len(requests[i][0]) + len(requests[i][1])))
        pad_id = self.pad_id
        batch_size = self.runtime.batch_size
        for start in phase(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
            rows = order[start:start + batch_size]
            seqs, n_cont = [], []
            for i in rows:
                ctx, cont = requests[i]
                if not ctx:
                    raise ValueError("a continuation needs at least one context token")
                if len(cont) >= self.max_length:
                    raise UserError(f"a continuation of {len(cont)} tokens does not fit max_length {self.max_length}; "
                                    "raise max_length or shorten the task's answers")
                seq = (ctx + cont)[-self.max_length:]
                seqs.append(seq)
                n_cont.append(len(cont))
            width = max(map(len, seqs))
            ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for r, seq in enumerate(seqs):  # right padding: positions of real tokens are unchanged
                ids[r, :len(seq)] = torch.tensor(seq)
                mask[r, :len(seq)] = 1
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits  # [B, T, V]
            for r, i in enumerate(rows):
                length, n = len(seqs[r]), n_cont[r]
                if n == 0:
                    continue
                # logits at position t predict token t+1: the continuation tokens [length-n, length) are
                # predicted by positions [length-n-1, length-1). log_softmax on this slice only: [n, V].
                logprobs = torch.log_softmax(logits[r, length - n - 1:length - 1].float(), dim=-1)
                targets = ids[r, length - n:length].to(self.device)
                out[i] = logprobs.gather(-1, targets[:, None]).sum().item()
        return out

    @torch.no_grad()
    def choice_loglikelihoods(self, items: list[tuple[list[int], list[list[int]]]], desc: str = "choices") -> list[list[float]]:
        """For each (context, [continuations]) item, Σ log p(continuation | context) per continuation, in nats.

        The context runs once per item, not once per choice: a pass over context[:-1] fills a KV cache, then
        every choice row (context[-1] + choice) attends to its item's cached prefix, at the positions it
        would have in the full sequence, so the numbers equal `loglikelihoods` on the joined pairs (float
        round-off aside). Items that need truncation or have a one-token context are scored in full.
        """
        out = [[0.0] * len(conts) for _, conts in items]
        shared, full = [], []
        for i, (ctx, conts) in enumerate(items):
            fits = len(ctx) + max(map(len, conts)) <= self.max_length
            (shared if fits and len(ctx) > 1 else full).append(i)
        if full:
            scores = iter(self.loglikelihoods([(items[i][0], c) for i in full for c in items[i][1]], desc=desc))
            for i in full:
                out[i] = [next(scores) for _ in items[i][1]]
        shared.sort(key=lambda i: -len(items[i][0]))  # similar prefix lengths share a batch: less padding
        batch_size = self.runtime.batch_size
        for start in phase(range(0, len(shared), batch_size), desc=desc, unit="batch", leave=False):
            group = shared[start:start + batch_size]
            for i, scores in zip(group, self._shared_prefix_scores([items[i] for i in group])):
                out[i] = scores
        return out

    def _shared_prefix_scores(self, items: list[tuple[list[int], list[list[int]]]]) -> list[list[float]]:
        prefixes = [ctx[:-1] for ctx, _ in items]
        ids, mask = self._right_padded(prefixes)  # [B, P]
        prefix = self.model(input_ids=ids, attention_mask=mask, use_cache=True, **self._no_logits)
        cache = prefix.get(self._cache_arg)
        owner = [b for b, (_, conts) in enumerate(items) for _ in conts]  # item of each choice row
        cache.batch_select_indices(torch.tensor(owner))  # [B, ...] -> [R, ...]; CPU ids index a cache on any device
        rows = [[ctx[-1]] + cont for ctx, conts in items for cont in conts]
        row_ids, row_mask = self._right_padded(rows)  # [R, W]
        starts = torch.tensor([len(prefixes[b]) for b in owner], device=self.device)
        positions = starts[:, None] + torch.arange(row_ids.shape[1], device=self.device)[None, :]
        logits = self.model(input_ids=row_ids, attention_mask=torch.cat([mask[owner], row_mask], dim=1),
                            position_ids=positions, use_cache=True, **{self._cache_arg: cache}).logits  # [R, W, V]
        flat = []
        for r, row in enumerate(rows):
            n = len(row) - 1  # logits at 0..n-1 predict the choice tokens 1..n of the row
            logprobs = torch.log_softmax(logits[r, :n].float(), dim=-1)
            flat.append(logprobs.gather(-1, row_ids[r, 1:n + 1, None]).sum().item() if n else 0.0)
        scores = iter(flat)
        return [[next(scores) for _ in conts] for _, conts in items]

    def _right_padded(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, attention mask), both [len(seqs), longest], on the model's device; real tokens keep their positions."""
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, seq in enumerate(seqs):
            ids[r, :len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[r, :len(seq)] = 1
        return ids.to(self.device), mask.to(self.device)

    def rolling_nll(self, token_ids: list[list[int]], stride: int = 0, desc: str = "perplexity") -> list[tuple[float, int]]:
        """(NLL in nats, tokens predicted) per token sequence; every token after the first is predicted exactly once.

        A sequence longer than max_length is cut into windows of ``stride`` predicted tokens (default:
        max_length // 2); each window sees up to max_length - stride earlier tokens as context.
        """
        stride = stride or max(1, self.max_length // 2)
        requests, owner = [], []
        for seq_no, ids in enumerate(token_ids):
            for begin in range(1, len(ids), stride):
                end = min(begin + stride, len(ids))
                requests.append((ids[max(0, end - self.max_length):begin], ids[begin:end]))
                owner.append(seq_no)
        scores = self.loglikelihoods(requests, desc=desc)
        totals = [[0.0, 0] for _ in token_ids]
        for seq_no, (_, cont), logprob in zip(owner, requests, scores):
            totals[seq_no][0] -= logprob
            totals[seq_no][1] += len(cont)
        return [(nll, n) for nll, n in totals]

    def greedy_answers(self, prompts: list[list[int]], max_new_tokens: int, stop: list[str]) -> list[str]:
        """Greedy answers to token-id prompts, cut at EOS and at the first stop string."""
        from ..rlhf.generation import SamplingConfig, generate

        sampling = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0,
                                  batch_size=self.runtime.batch_size, backend="hf")
        generations = generate(self.model, self.tokenizer, prompts, sampling, seeds=[0] * len(prompts))
        answers = []
        for g in generations:
            text = self.tokenizer.decode(g.completion_ids, skip_special_tokens=True)
            for s in stop:
                if s and s in text:
                    text = text[:text.index(s)]
            answers.append(text.strip())
        return answers


def default_prefix(tokenizer) -> list[int]:
    """The special tokens a tokenizer puts before text by default, e.g. [BOS] for Llama 2, [] for GPT-2 or SmolLM2."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    default = tokenizer("a")["input_ids"]
    for start in range(len(default) - len(plain) + 1):
        if default[start:start + len(plain)] == plain:
            return default[:start]
    return []
