"""A causal LM under evaluation behind three operations: continuation log-likelihoods, rolling NLL, greedy answers.

Every likelihood-based task reduces to `loglikelihoods`: the summed log-probability of continuation tokens
given context tokens. Perplexity scores a long text as disjoint continuation windows (`rolling_nll`);
multiple choice scores each choice as a continuation of the question. One primitive, one place to batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..errors import UserError


@dataclass
class Runtime:
    """How to run a checkpoint; everything here except batch_size can change the numbers (so it is fingerprinted)."""

    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    max_length: int = 0
    """0 = the model's max_position_embeddings."""

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def device_map(self) -> str | None:
        """Spread a model over all visible GPUs when there are several (a 70B model fits no single GPU)."""
        return "auto" if self.device == "auto" and torch.cuda.device_count() > 1 else None

    def torch_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            # CPU bf16 is 25-40x slower on AVX2 machines; on GPUs bf16 is the Llama 2 release precision.
            on_gpu = self.torch_device().type == "cuda"
            return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.dtype]


class LanguageModel:
    """A loaded causal LM + tokenizer, with the scoring operations the tasks need."""

    def __init__(self, model, tokenizer, runtime: Runtime):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.runtime = runtime
        self.device = next(model.parameters()).device  # inputs go where the embeddings are (first shard)
        limit = getattr(model.config, "max_position_embeddings", 4096)
        self.max_length = min(runtime.max_length or limit, limit)

    def encode(self, text: str, bos: bool = True) -> list[int]:
        """Token ids of ``text`` without special tokens, with BOS prepended when asked (and the tokenizer has one)."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        bos_id = self.tokenizer.bos_token_id
        return ([bos_id] if bos and bos_id is not None else []) + ids

    def split_continuation(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids with BOS, continuation ids), tokenizing the joined text so merges across the seam are kept."""
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        shared = 0
        while shared < min(len(ctx), len(whole)) and ctx[shared] == whole[shared]:
            shared += 1
        # A piece merging the last context characters with the continuation stays in the continuation.
        shared = min(shared, len(whole) - 1) if continuation else shared
        return whole[:shared], whole[shared:]

    @torch.no_grad()
    def loglikelihoods(self, requests: list[tuple[list[int], list[int]]], desc: str = "score") -> list[float]:
        """Σ log p(continuation token | everything before it), in nats, for each (context, continuation) pair.

        The context must be non-empty (BOS at least). Inputs longer than max_length keep their last
        max_length tokens: the continuation first, then as much context as fits.
        """
        out = [0.0] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: -(len(requests[i][0]) + len(requests[i][1])))
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch_size = self.runtime.batch_size
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", leave=False):
            rows = order[start:start + batch_size]
            seqs, n_cont = [], []
            for i in rows:
                ctx, cont = requests[i]
                if not ctx:
                    raise ValueError("a continuation needs at least one context token (BOS)")
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
