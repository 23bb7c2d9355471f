"""The ``distill`` initialisation of new rows: starting from subword-mean, fit only the new rows, with the
original model as teacher, on target-language text read in new ids.

Why static rows fail (docs/tokenizer.md): with a tied head one row must be both an input (the meaning of its
whole spelling, which the layers have never read as one vector) and an output (a logit of about
``log p_old(spelling | context)``); no closed-form row is both. Tokenizer-transfer methods that distil the
original model (e.g. Minixhofer et al. 2024's zero-shot tokenizer transfer, MATT 2025) instead fit the new
embeddings against the original model. Here nothing but the new rows is trained, for a few Adam steps, on the
text ``tokenizer extend`` learnt from (or the new tokens' own spellings); never on held-out text.

The teacher needs no copy of the model: the extended model reading *old* ids is the original model (old rows
are bit-identical, and new rows only add logits, which are dropped).

Alignment: an extension only appends merges, so the new segmentation coarsens the old one and new token ``j``
covers old tokens ``spans[j] = (s, e)``. The student predicts token ``j`` from the state after token
``j - 1``, which lines up with the teacher's state after old token ``s - 1``. Loss there: the cross-entropy of
the next token (which sets how much mass the new tokens take) plus the cross-entropy against the teacher's
next-token distribution among old tokens only (the relative odds the original model gives them, i.e. what
reading the new tokens must mean to the layers). A soft target that also moved ``p_old(spelling)`` from the
first piece to the new token was tried first and was worse than subword-mean (5.95 bits per byte against
4.45 on SmolLM2/Korean): the teacher's mass on a first piece includes the spellings of every other new token
that starts with it, which the extended tokenizer never emits as that piece, so new tokens were pushed down.
"""

from __future__ import annotations

import logging

import torch

from ..progress import phase

log = logging.getLogger(__name__)
TEACHER_WEIGHT = 1.0  # 0 (data only) was worse on SmolLM2/Korean: 4.853 against 4.738 bits per byte at lr 1e-2;
# 3 gave 2.782 against 2.769 at 240 steps, and with the default 480 steps and rows averaged over the last half 2.622
# against 2.656 on the bundled paragraphs, but worse on held-out genres the fit read (docs/tokenizer.md)


def align_spans(old_ids: list[int], new_ids: list[int], pieces_of) -> list[tuple[int, int]] | None:
    """Old-token span ``(s, e)`` of each new token, or None when the new ids do not expand to ``old_ids``.

    ``pieces_of(i)`` gives the old ids new-vocabulary id ``i`` stands for (``[i]`` for an old id).
    """
    spans, pos = [], 0
    for i in new_ids:
        pieces = pieces_of(i)
        if not pieces or old_ids[pos:pos + len(pieces)] != pieces:
            return None
        spans.append((pos, pos + len(pieces)))
        pos += len(pieces)
    return spans if pos == len(old_ids) else None


def distillation_loss(student_logprobs: torch.Tensor, teacher_probs: torch.Tensor, next_ids: torch.Tensor,
                      teacher_weight: float = TEACHER_WEIGHT) -> torch.Tensor:
    """Mean loss (nats) over N positions: the student's cross-entropy on the next token, plus ``teacher_weight``
    times its cross-entropy against the teacher among old tokens only.

    student_logprobs [N, V_new] (log-softmax over the extended vocabulary); teacher_probs [N, V_old] (the
    teacher's next-token distribution at the aligned position); next_ids [N] (the next token, new ids).
    ``-log q(next) - w Σ_v p_T(v) log q(v | v old)``, with ``q(v | v old) = q(v) / Σ_old q``: the teacher fixes
    the relative odds of old tokens (what reading the new token must mean), the data the mass of new ones.
    """
    old_size = teacher_probs.shape[1]
    hard = -student_logprobs.gather(-1, next_ids[:, None])[:, 0]
    old_logprobs = student_logprobs[:, :old_size] - torch.logsumexp(student_logprobs[:, :old_size], -1, keepdim=True)
    soft = -(teacher_probs * old_logprobs).sum(-1)
    return (hard + teacher_weight * soft).mean()


def _old_logits(model, hidden: torch.Tensor, old_size: int) -> torch.Tensor:
    """The model's logits over old tokens from final hidden states [N, H] -> [N, V_old] (fp32), with the
    final soft-capping that Gemma 2 applies in its forward."""
    logits = model.get_output_embeddings()(hidden)[..., :old_size].float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    return cap * torch.tanh(logits / cap) if cap else logits


def hidden_state_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over layers of ``Σ |h_S - h_T|² / Σ |h_T|²`` (sums over positions and features): student [K, N, H]
    and teacher [K, N, H] hidden states of K layers at N aligned positions. Per-layer normalisation, because
    the scale of the residual stream grows by orders of magnitude from the first layer to the last."""
    return ((student.float() - teacher.float()).pow(2).sum((1, 2)) / teacher.float().pow(2).sum((1, 2)).clamp_min(1e-12)).mean()


class _Document:
    """One aligned text: student ids [1 + N], and per student position the teacher's final state before the
    token [N, H], the next new id [N], and, only when ``with_layers`` (the hidden-state term is on), the
    teacher's states of every layer after the token's last old piece [K, N, H] (what reading the new token
    should leave in the residual stream; K times the memory of the rest: 30 layers x 200k tokens x 576 x 4 B
    = 14 GB on SmolLM2)."""

    def __init__(self, model, context_id: int, old_ids: list[int], new_ids: list[int], spans, with_layers: bool):
        device = next(model.parameters()).device
        teacher_in = torch.tensor([[context_id] + old_ids], device=device)
        layers = model.base_model(input_ids=teacher_in, output_hidden_states=with_layers)
        layers = layers.hidden_states if with_layers else (layers.last_hidden_state,)  # K+1 (or 1) x [1, 1 + L, H]
        starts = torch.tensor([s for s, _ in spans], device=device)
        ends = torch.tensor([e for _, e in spans], device=device)
        self.student_in = torch.tensor([[context_id] + new_ids], device=device)
        self.teacher_hidden = layers[-1][0, starts].detach()  # state after old token s - 1 (index s, the context is 0)
        # every layer's state after old token e - 1
        self.teacher_layers = torch.stack([h[0, ends] for h in layers[1:]]).detach() if with_layers else None
        self.next_ids = torch.tensor(new_ids, device=device)


def distill_new_rows(model, old_size: int, new_ids: list[int], documents: list[tuple[list[int], list[int]]],
                     pieces_of, context_id: int, steps: int, lr: float, batch_documents: int,
                     generator: torch.Generator, hidden_weight: float = 0.0, average_from: int = 0) -> dict:
    """Fit the rows ``new_ids`` of the (already resized and initialised) model's input embeddings and untied
    head in place with Adam on ``distillation_loss``; every other parameter is left untouched (old rows are
    restored bit for bit at the end). ``documents``: (old ids, new ids) of the same text. ``average_from`` k in
    1..steps: the rows kept are the mean of the rows after steps k, k + 1, ..., steps (tail averaging, as in
    stochastic weight averaging: the mean of a noisy fit's late iterates sits nearer the flat middle of where
    they wander); 0: the last step's rows. Returns a summary: documents used, positions, first and last loss."""
    aligned = [(o, n, spans) for o, n in documents if (spans := align_spans(o, n, pieces_of))]
    if not aligned or steps < 1:
        return {"documents": 0, "positions": 0, "steps": 0}
    weights = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not weights[0]:
        weights.append(head.weight)
    saved = [w.detach()[:old_size].clone() for w in weights]
    trainable = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    docs: dict[int, _Document] = {}  # made when a step first draws the text: steps x batch_documents may draw a
    # small part of a long init text, and the teacher's pass over a text costs a forward of the whole model

    def document(k: int) -> _Document:
        if k not in docs:
            with torch.no_grad():
                docs[k] = _Document(model, context_id, *aligned[k], hidden_weight > 0)
        return docs[k]

    row_mask = torch.zeros(weights[0].shape[0], 1, dtype=weights[0].dtype, device=weights[0].device)
    rows = torch.tensor(new_ids, device=weights[0].device)
    row_mask[rows] = 1
    means = None  # per weight, the running mean of its new rows [len(new_ids), H] (fp32) from step average_from on
    for w in weights:
        w.requires_grad_(True)
    optimizer = torch.optim.Adam(weights, lr=lr)
    losses = []
    bar = phase(total=steps, desc="distill new rows", unit="step")
    try:
        for _ in range(steps):
            chosen = torch.randperm(len(aligned), generator=generator)[:batch_documents].tolist()
            positions = sum(document(k).next_ids.numel() for k in chosen)
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for k in chosen:  # one document at a time: [N, V_new] log-probabilities are the largest tensor
                doc = document(k)
                out = model(input_ids=doc.student_in, output_hidden_states=hidden_weight > 0)
                logprobs = torch.log_softmax(out.logits[0, :-1].float(), -1)
                with torch.no_grad():
                    teacher_probs = torch.softmax(_old_logits(model, doc.teacher_hidden, old_size), -1)
                loss = distillation_loss(logprobs, teacher_probs, doc.next_ids, TEACHER_WEIGHT)
                if hidden_weight > 0:  # student state after new token k (index k + 1) against the teacher's after its span
                    student_layers = torch.stack([h[0, 1:] for h in out.hidden_states[1:]])
                    loss = loss + hidden_weight * hidden_state_loss(student_layers, doc.teacher_layers)
                (loss * doc.next_ids.numel() / positions).backward()
                total += loss.item() * doc.next_ids.numel() / positions
            for w in weights:
                w.grad.mul_(row_mask)  # only new rows move (Adam without weight decay keeps zero-gradient rows)
            optimizer.step()
            losses.append(total)
            if 0 < average_from <= len(losses):
                taken = len(losses) - average_from + 1  # iterates in the mean, this one included
                current = [w.detach()[rows].float() for w in weights]
                means = current if means is None else [m + (c - m) / taken for m, c in zip(means, current)]
            log.debug("distill step %d: %.4f nats", len(losses), total)
            bar.update(1)
            bar.set_postfix(loss=f"{total:.3f}", refresh=False)
    finally:
        bar.close()
        with torch.no_grad():
            for k, (w, old) in enumerate(zip(weights, saved)):
                w.requires_grad_(False)
                w[:old_size] = old
                if means is not None:
                    w[rows] = means[k].to(w.dtype)
        for p, flag in zip(model.parameters(), trainable):
            p.requires_grad_(flag)
        model.train(was_training)
    return {"documents": len(aligned), "positions": sum(len(n) for _, n, _ in aligned), "documents_drawn": len(docs),
            "steps": steps, "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4),
            **({"rows_averaged_from_step": average_from} if means is not None else {})}
