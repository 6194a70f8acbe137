"""Next-token predictions and in-context accuracy: the first thing a user looks at."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.inference import Progress, encode, first_token_ids, no_progress, run_forward, top_tokens
from core.models import LoadedModel
from core.prompts import PromptSet, PromptSettings, build_prompts, split_task
from core.stats import Accuracy
from core.tasks import Task


@dataclass
class Prediction:
    prompts: PromptSet
    icl_top1: list[str]
    zero_shot_top1: list[str]
    icl_correct: list[bool]
    zero_shot_correct: list[bool]
    icl_top: list[list[tuple[str, int, float]]]  # per prompt, top-k (token, id, prob)
    zero_shot_top: list[list[tuple[str, int, float]]]
    overlap: bool

    @property
    def icl(self) -> Accuracy:
        """In-context first-token accuracy with its number of queries and 95% interval."""
        return Accuracy(sum(self.icl_correct), len(self.icl_correct))

    @property
    def zero_shot(self) -> Accuracy:
        return Accuracy(sum(self.zero_shot_correct), len(self.zero_shot_correct))

    @property
    def icl_accuracy(self) -> float:
        return self.icl.value

    @property
    def zero_shot_accuracy(self) -> float:
        return self.zero_shot.value

    def table(self) -> list[dict]:
        """The page's rows; predicted tokens as ``repr`` so a newline or a leading space shows
        (``'\\n'``, ``' cold'``), not a blank cell (as :meth:`core.query_effects.QueryEffect.row`)."""
        return [
            {
                "query": q.input,
                "target": t.strip(),
                "prediction": repr(p),
                "correct": c,
                "zero-shot prediction": repr(z),
            }
            for q, t, p, c, z in zip(
                self.prompts.queries, self.prompts.targets, self.icl_top1, self.icl_correct, self.zero_shot_top1
            )
        ]

    def to_json(self) -> dict:
        return {
            "prompts": list(self.prompts.clean),
            "zero_shot_prompts": list(self.prompts.zero_shot),
            "targets": list(self.prompts.targets),
            "predictions": self.icl_top1,
            "zero_shot_predictions": self.zero_shot_top1,
            "icl_accuracy": self.icl_accuracy,
            "icl_accuracy_ci": self.icl.to_json(),
            "zero_shot_accuracy": self.zero_shot_accuracy,
            "zero_shot_accuracy_ci": self.zero_shot.to_json(),
            "n_prompts": len(self.prompts),
        }


def predict(
    lm: LoadedModel, task: Task, settings: PromptSettings, k: int = 10, progress: Progress = no_progress
) -> Prediction:
    """In-context and zero-shot predictions on the test split (the whole task when it is small)."""
    splits = split_task(task, settings.seed)
    prompts = build_prompts(splits.test, splits.train, settings)
    targets = first_token_ids(lm, prompts.targets)
    icl = run_forward(lm, encode(lm, prompts.clean), progress=lambda f, m: progress(0.7 * f, m))
    zs = run_forward(lm, encode(lm, prompts.zero_shot), progress=lambda f, m: progress(0.7 + 0.3 * f, m))

    def decode(ids: torch.Tensor) -> list[str]:
        return [lm.tokenizer.decode([int(i)]) for i in ids]

    icl_ids, zs_ids = icl.logits.argmax(-1), zs.logits.argmax(-1)
    return Prediction(
        prompts=prompts,
        icl_top1=decode(icl_ids),
        zero_shot_top1=decode(zs_ids),
        icl_correct=(icl_ids == targets).tolist(),
        zero_shot_correct=(zs_ids == targets).tolist(),
        icl_top=top_tokens(lm, icl.logits, k),
        zero_shot_top=top_tokens(lm, zs.logits, k),
        overlap=splits.overlap,
    )


def tokens(lm: LoadedModel, text: str) -> list[tuple[int, str]]:
    """(id, decoded text) of each token of a prompt."""
    ids = lm.tokenizer(text)["input_ids"]
    return [(int(i), lm.tokenizer.decode([int(i)])) for i in ids]
