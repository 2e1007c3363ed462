"""Exact-match scoring in one forward pass per batch (teacher forcing), with routing counted on the way.

Greedy decoding reproduces the gold answer exactly when, and only when, the argmax at every answer position
(the answer's tokens and the closing EOS) equals the gold token: each greedy step then sees exactly the gold
prefix. So "argmax == gold at all label positions" is greedy exact match, computed without a generate loop.
(`hellora.study.skill_moe.accuracy` decodes and compares stripped text; the two agree except when a model emits extra
whitespace around a right answer, which the stripped comparison forgives. tests/study checks the agreement.)

Also returned: token accuracy (share of answer positions right), a softer signal when exact match sits at 0.

Routing: wrapping the pass in `ExpertActivationCounter` counts top-k assignments of every real token (prompt
and answer) per layer; `routing_profile` turns the counts into an `ExpertProfile` for entropy, hot sets, FLOPs.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from hellora.data import PadCollator
from hellora.data.tokenize import IGNORE_INDEX
from hellora.profiling import ExpertActivationCounter, ExpertProfile

if TYPE_CHECKING:
    from torch import nn

    from hellora.profiling import ExpertActivationCounter


@torch.no_grad()
def score_features(model: nn.Module, features: list[dict], *, batch_size: int = 256,
                   counter: ExpertActivationCounter | None = None) -> dict:
    """{exact_match, token_accuracy, n} of prompt-masked features (labels = gold answer + EOS, -100 elsewhere)."""
    was_training = model.training
    model.eval()
    collate = PadCollator(0)
    exact = tokens_right = tokens_total = 0
    try:
        for i in range(0, len(features), batch_size):
            batch = collate(features[i:i + batch_size])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
            gold = batch["labels"][:, 1:]
            pred = logits[:, :-1].argmax(-1)
            mask = gold != IGNORE_INDEX
            right = (pred == gold) & mask
            exact += int((right.sum(1) == mask.sum(1)).sum())
            tokens_right += int(right.sum())
            tokens_total += int(mask.sum())
    finally:
        model.train(was_training)
    n = len(features)
    return {"exact_match": exact / n if n else 0.0, "token_accuracy": tokens_right / tokens_total if tokens_total
            else 0.0, "n": n}


def score_with_routing(model: nn.Module, features: list[dict], *, batch_size: int = 256) -> tuple[dict, ExpertProfile]:
    """`score_features` plus the routing of those tokens as a forward-mode `ExpertProfile`."""
    from hellora.models.families import describe_moe_model

    spec = describe_moe_model(model)
    with ExpertActivationCounter(model, spec) as counter:
        scores = score_features(model, features, batch_size=batch_size)
    return scores, counter.to_profile("forward")


def routing_entropy(profile: ExpertProfile) -> list[float]:
    """Per-layer entropy (nats) of the share of assignments per expert; log(E) is uniform routing."""
    out = []
    for row in profile.counts:
        total = sum(row)
        out.append(-sum(c / total * math.log(c / total) for c in row if c) if total else 0.0)
    return out


def hot_set_jaccard(a: ExpertProfile, b: ExpertProfile, k: int) -> float:
    """Mean over layers of the Jaccard overlap of the two profiles' layer-level top-k sets."""
    sa, sb = a.select("layer", k).experts, b.select("layer", k).experts
    values = [len(set(sa[l]) & set(sb[l])) / len(set(sa[l]) | set(sb[l])) for l in sa]
    return sum(values) / len(values)
