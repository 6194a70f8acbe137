"""How a steered generation differs from the unsteered one: where the two texts first part,
and how the vector moved the distribution of the first generated token (the tokens that rose
and fell most, and the KL divergence)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.models import LoadedModel

N_CHANGES = 8  # tokens listed in each direction of a next-token change


@dataclass(frozen=True)
class NextTokenChange:
    """How the vector moved the distribution of the first generated token.

    ``rose``/``fell``: ``(token, p_before, p_after)``, largest change first; ``kl`` is
    ``KL(steered || unsteered)`` in nats.
    """

    rose: list[tuple[str, float, float]]
    fell: list[tuple[str, float, float]]
    kl: float


def next_token_change(
    lm: LoadedModel, before: torch.Tensor, after: torch.Tensor, k: int = N_CHANGES
) -> NextTokenChange:
    """Compare two next-token distributions given as logits ``[d_vocab]``."""
    logp_b = torch.log_softmax(before.float(), -1)
    logp_a = torch.log_softmax(after.float(), -1)
    p_b, p_a = logp_b.exp(), logp_a.exp()
    kl = float((p_a * (logp_a - logp_b)).sum().clamp_min(0.0))
    diff = p_a - p_b

    def listed(order: torch.Tensor, sign: float) -> list[tuple[str, float, float]]:
        out = []
        for i in order.tolist():
            if sign * float(diff[i]) <= 0:
                break
            out.append((lm.tokenizer.decode([i]), float(p_b[i]), float(p_a[i])))
        return out

    k = min(k, diff.numel())
    return NextTokenChange(rose=listed(diff.topk(k).indices, 1.0), fell=listed((-diff).topk(k).indices, -1.0), kl=kl)


def first_divergence(a: str, b: str) -> int | None:
    """Index of the first differing character (the shorter length if one is a prefix)."""
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))
