"""Scoring answers as generations: the whole answer, not only its first token.

First-token accuracy (``core.patching.last_token_scores``) counts " Par" as Paris. Here the
model writes: greedy decoding of a few new tokens after each zero-shot prompt, without and
with the function vector, and a query counts as right when the generated answer *is* the
answer. Todd et al. (2023, section 3 and appendix) evaluate function vectors the same way on
multi-token answers.

- **Where the vector goes.** Added at the output of the chosen block at the last prompt
  token (as in the paper's zero-shot evaluation) *and* at every generated token: the
  ``"last"`` mode of :mod:`core.steer`, as the paper's own generation hook does, which stays
  registered while the model writes. The unsteered rows share the batch (``0 * v``).
- **How many tokens.** The longest answer's token count plus one, so every answer fits and a
  model that keeps writing after a complete answer is seen doing it. One budget for the batch.
- **What counts as the answer.** The generation up to its first line break (the default
  template ``Q: {x}\\nA: {y}`` ends an answer there; a template's text after ``{y}`` or its
  separator also end it when they are not blank), then spaces and punctuation stripped at
  both ends (Unicode categories P*: ``"Paris."`` and ``"«Paris»"`` are ``Paris``). The
  reference answer is stripped the same way. Inner text must match exactly.
- **Case.** Matching ignores case, except for tasks *about case*: every pair's output and
  input are equal ignoring case (capitalize: ``apple -> Apple``), or every output is a single
  letter of its input (lowercase_first_letter: ``Banana -> b``). There ``apple`` is wrong.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core.inference import Progress, no_progress
from core.models import LoadedModel
from core.prompts import check_template
from core.stats import Accuracy
from core.steer import generate_greedy_pairs
from core.tasks import Task

EXTRA_TOKENS = 1  # new tokens beyond the longest answer's


def is_case_task(task: Task) -> bool:
    """A task about letter case: every output equals its input ignoring case, or every output
    is one letter taken from its input (the first letter, in some case)."""
    pairs = task.pairs
    same_ignoring_case = all(p.output.casefold() == p.input.casefold() for p in pairs)
    one_letter = all(len(p.output) == 1 and p.output.casefold() in p.input.casefold() for p in pairs)
    return bool(pairs) and (same_ignoring_case or one_letter)


def _is_stripped(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith("P")


def strip_answer(text: str) -> str:
    """Spaces and punctuation removed at both ends (``" «Paris.»\\n"`` -> ``"Paris"``)."""
    start, end = 0, len(text)
    while start < end and _is_stripped(text[start]):
        start += 1
    while end > start and _is_stripped(text[end - 1]):
        end -= 1
    return text[start:end]


def answer_stops(template: str, separator: str) -> tuple[str, ...]:
    """Texts that end a generated answer: a line break, and the template's text after ``{y}``
    and the separator between examples when they are not blank."""
    _, _, after_y = check_template(template)
    return tuple(dict.fromkeys(s for s in ("\n", after_y, separator) if s.strip() or s == "\n"))


def generated_answer(text: str, stops: Sequence[str] = ("\n",)) -> str:
    """The answer part of a generation: up to the first stop, stripped (:func:`strip_answer`)."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=len(text))
    return strip_answer(text[:cut])


def is_match(generated: str, answer: str, case_sensitive: bool, stops: Sequence[str] = ("\n",)) -> bool:
    """Whether a generation *is* the answer (whole answer, after stripping both)."""
    got, want = generated_answer(generated, stops), strip_answer(answer)
    if not case_sensitive:
        got, want = got.casefold(), want.casefold()
    return got == want


@dataclass(frozen=True)
class GenerationScores:
    """Whole-answer accuracy of greedy generations without and with a vector (same queries)."""

    without: list[str]  # generated text per query
    with_vector: list[str]
    correct_without: list[bool]
    correct_with: list[bool]
    max_new_tokens: int
    case_sensitive: bool

    @property
    def accuracy_without(self) -> Accuracy:
        return Accuracy(sum(self.correct_without), len(self.correct_without))

    @property
    def accuracy_with(self) -> Accuracy:
        return Accuracy(sum(self.correct_with), len(self.correct_with))


def answer_budget(lm: LoadedModel, targets: Sequence[str]) -> int:
    """New tokens to generate: the longest target's token count plus :data:`EXTRA_TOKENS`."""
    longest = max(len(lm.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in targets)
    return longest + EXTRA_TOKENS


def score_generations(
    lm: LoadedModel,
    prompts: Sequence[str],
    targets: Sequence[str],
    vector: torch.Tensor,
    layer: int,
    case_sensitive: bool,
    stops: Sequence[str] = ("\n",),
    progress: Progress = no_progress,
) -> GenerationScores:
    """Greedy generations of ``prompts`` (zero-shot) without and with ``vector``
    (``[d_model]``, coefficient included) at block ``layer``, scored against ``targets``."""
    budget = answer_budget(lm, targets)
    without, with_vector = generate_greedy_pairs(lm, prompts, vector, layer, 1.0, budget, progress=progress)
    return GenerationScores(
        without=without,
        with_vector=with_vector,
        correct_without=[is_match(g, t, case_sensitive, stops) for g, t in zip(without, targets)],
        correct_with=[is_match(g, t, case_sensitive, stops) for g, t in zip(with_vector, targets)],
        max_new_tokens=budget,
        case_sensitive=case_sensitive,
    )
