"""What a vector added at one layer does to each zero-shot query (Todd et al. 2023, section 2.1).

For each held-out query alone (no demonstrations), two last-token runs: unedited, and with
the vector added to the residual stream block ``layer`` writes at the last token. Each row
gives the top-1 prediction of both and the change in log-probability of the answer's first
token: positive when the vector moved the model toward the answer, even where the top-1
prediction did not change. Both runs go through :func:`core.patching.last_token_scores`,
as every sweep does, so the numbers agree with the layer sweep's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core import checks
from core.inference import encode, first_token_ids
from core.models import LoadedModel
from core.patching import Edit, last_token_scores
from core.prompts import PromptSet, PromptSettings, held_out_prompts
from core.tasks import Task


@dataclass(frozen=True)
class QueryEffect:
    query: str
    target: str
    zero_shot: str  # top-1 next token of the query alone
    with_vector: str  # the same with the vector added
    logprob_change: float  # log p(answer) with the vector - without
    correct_with: bool

    def row(self) -> dict:
        """A table row (the column names the lesson shows); predicted tokens as ``repr`` so a
        newline or a leading space shows (``'\\n'``, ``' warmer'``), not a blank cell."""
        return {
            "query": self.query,
            "target": self.target,
            "zero-shot prediction": repr(self.zero_shot),
            "with vector": repr(self.with_vector),
            "Δ log p(answer)": self.logprob_change,
            "correct with": self.correct_with,
        }


def query_effects(
    lm: LoadedModel, prompts: PromptSet, layer: int, vector: torch.Tensor, n: int = 20
) -> list[QueryEffect]:
    """The first ``n`` zero-shot queries of ``prompts``, without and with ``vector [d_model]``
    added at block ``layer`` (last token)."""
    layer = checks.check_layer(layer, lm.arch.n_layers)
    n = min(max(1, int(n)), len(prompts))
    enc = encode(lm, prompts.zero_shot[:n])
    tgt = first_token_ids(lm, prompts.targets[:n])  # [n]
    scores = last_token_scores(lm, enc, tgt, [[], [Edit(layer, "resid", vector, add=True)]])
    change = scores.logprob[1] - scores.logprob[0]  # [n]
    return [
        QueryEffect(
            query=prompts.queries[i].input,
            target=prompts.targets[i].strip(),
            zero_shot=lm.tokenizer.decode([int(scores.top1[0, i])]),
            with_vector=lm.tokenizer.decode([int(scores.top1[1, i])]),
            logprob_change=float(change[i]),
            correct_with=bool(scores.top1[1, i] == tgt[i]),
        )
        for i in range(n)
    ]


def hvector_query_effects(
    lm: LoadedModel, task: Task, settings: PromptSettings, hvector: torch.Tensor, layer: int, n: int
) -> list[QueryEffect]:
    """Lesson step 2's table: ``task``'s first ``n`` held-out zero-shot queries (the Task vectors
    page's test queries) without and with the h-vector of ``layer`` (``hvector [d_model]``)."""
    return query_effects(lm, held_out_prompts(task, settings, n)[1], layer, hvector, n)
