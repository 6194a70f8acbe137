"""In-context, zero-shot and corrupted prompts (shuffled or random demo labels).

An in-context prompt is ``n_shots`` demonstrations and a query, each rendered with a
template containing ``{x}`` and ``{y}`` (default ``Q: {x}\\nA: {y}``, blank lines between
examples, as in Todd et al. 2023). The query stops before ``{y}``; the target is the answer
with a leading space, and the model is scored on the target's first token.
A corrupted prompt keeps the demos' inputs but breaks their labels, so the task is no longer
shown: ``corruption="shuffle"`` shuffles the labels among the demos (Todd et al. 2023, section
2.2); ``"random"`` replaces each label by the output of another pair of the task, drawn at random
(the ARENA course's variant: the labels are still outputs of the task, but paired with the wrong
inputs and no longer a permutation of the demos' own). Everything is seeded: the same seed gives
the same prompts everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from core import limits
from core.checks import check_corruption
from core.errors import UserInputError
from core.tasks import Pair, Task

DEFAULT_TEMPLATE = "Q: {x}\nA: {y}"
DEFAULT_SEPARATOR = "\n\n"
MIN_PAIRS_FOR_SPLIT = 24  # below this, splits overlap (and the UI says so)


@dataclass(frozen=True)
class PromptSettings:
    n_shots: int = 10  # demonstrations per prompt
    n_prompts: int = 20  # prompts per batch (attribution means, accuracy)
    seed: int = 0  # one seed fixes the split, the demos and the shuffles
    template: str = DEFAULT_TEMPLATE
    separator: str = DEFAULT_SEPARATOR
    corruption: str = "shuffle"  # how corrupted prompts break labels: "shuffle" (paper) or "random"

    def key(self) -> tuple:
        return (self.n_shots, self.n_prompts, self.seed, self.template, self.separator, self.corruption)

    def to_dict(self) -> dict:
        return {
            "n_shots": self.n_shots,
            "n_prompts": self.n_prompts,
            "seed": self.seed,
            "template": self.template,
            "separator": self.separator,
            "corruption": self.corruption,
        }


@dataclass(frozen=True)
class Splits:
    """Disjoint train (demos, building vectors), valid (choosing a layer), test (evaluation)."""

    train: tuple[Pair, ...]
    valid: tuple[Pair, ...]
    test: tuple[Pair, ...]
    overlap: bool  # True when the task is too small to split: all three are the whole task


@dataclass(frozen=True)
class PromptSet:
    queries: tuple[Pair, ...]
    demos: tuple[tuple[Pair, ...], ...]  # per prompt, the demonstrations in order
    clean: tuple[str, ...]  # in-context prompts
    corrupted: tuple[str, ...]  # same demos and query, labels shuffled or random (settings.corruption)
    zero_shot: tuple[str, ...]  # the query alone
    targets: tuple[str, ...]  # answers with their leading space

    def __len__(self) -> int:
        return len(self.queries)


def check_template(template: str) -> tuple[str, str, str]:
    """Split a template into the text before ``{x}``, between ``{x}`` and ``{y}``, and after ``{y}``."""
    if template.count("{x}") != 1 or template.count("{y}") != 1:
        raise UserInputError("The template must contain {x} and {y} exactly once each, e.g. `Q: {x}\\nA: {y}`.")
    if template.index("{x}") > template.index("{y}"):
        raise UserInputError("In the template, {x} must come before {y}.")
    before_y, after_y = template.split("{y}")
    a, b = before_y.split("{x}")
    return a, b, after_y


def render_demo(template: str, pair: Pair) -> str:
    a, b, c = check_template(template)
    return f"{a}{pair.input}{b}{pair.output}{c}"


def render_query(template: str, x: str) -> str:
    a, b, _ = check_template(template)
    return f"{a}{x}{b}".rstrip(" ")


def target_text(y: str) -> str:
    return " " + y


def split_task(task: Task, seed: int = 0) -> Splits:
    pairs = list(task.pairs)
    random.Random(seed).shuffle(pairs)
    n = len(pairs)
    if n < MIN_PAIRS_FOR_SPLIT:
        whole = tuple(pairs)
        return Splits(whole, whole, whole, overlap=True)
    n_test = round(0.4 * n)
    n_valid = round(0.15 * n)
    test = tuple(pairs[:n_test])
    valid = tuple(pairs[n_test : n_test + n_valid])
    train = tuple(pairs[n_test + n_valid :])
    return Splits(train, valid, test, overlap=False)


def _derange(items: list[str], rng: random.Random) -> list[str]:
    """A shuffle that moves labels where it can (a few tries; ties are fine)."""
    shuffled = items[:]
    for _ in range(20):
        rng.shuffle(shuffled)
        if len(items) < 2 or all(s != o for s, o in zip(shuffled, items)):
            break
    return shuffled


def _random_labels(demos: Sequence[Pair], pool: Sequence[Pair], rng: random.Random) -> list[str]:
    """For each demo, the output of another pair of ``pool`` drawn at random, never the demo's
    own output while the pool has another one (a task whose outputs are all equal keeps them)."""
    outputs = [p.output for p in pool]
    labels = []
    for d in demos:
        others = [y for y in outputs if y != d.output]
        labels.append(rng.choice(others) if others else d.output)
    return labels


def build_prompts(
    queries_from: Sequence[Pair],
    demo_pool: Sequence[Pair],
    settings: PromptSettings,
    n_prompts: int | None = None,
) -> PromptSet:
    """Prompts for the first ``n_prompts`` queries; demos come from ``demo_pool`` minus the query."""
    check_template(settings.template)
    check_corruption(settings.corruption)
    if not 0 <= settings.n_shots <= limits.MAX_SHOTS:
        raise UserInputError(f"Shots must be between 0 and {limits.MAX_SHOTS} (got {settings.n_shots}).")
    n_prompts = settings.n_prompts if n_prompts is None else n_prompts
    if not 1 <= n_prompts <= limits.MAX_N_PROMPTS:
        raise UserInputError(f"The number of prompts must be between 1 and {limits.MAX_N_PROMPTS}.")
    queries = list(queries_from)[:n_prompts]
    if not queries:
        raise UserInputError("No queries to build prompts from.")
    demos_all, clean, corrupted, zero_shot = [], [], [], []
    for i, query in enumerate(queries):
        pool = [p for p in demo_pool if p.input != query.input]
        if len(pool) < settings.n_shots:
            raise UserInputError(
                f"{settings.n_shots} shots need at least {settings.n_shots + 1} example pairs; "
                f"this task has {len(pool) + 1} to draw from. Lower the shots or add examples."
            )
        rng = random.Random(settings.seed * 1_000_003 + i)
        demos = rng.sample(pool, settings.n_shots)
        if settings.corruption == "shuffle":
            bad_labels = _derange([d.output for d in demos], rng)
        else:
            bad_labels = _random_labels(demos, pool, rng)
        sep = settings.separator
        query_text = render_query(settings.template, query.input)
        clean_demos = [render_demo(settings.template, d) for d in demos]
        bad_demos = [render_demo(settings.template, Pair(d.input, y)) for d, y in zip(demos, bad_labels)]
        clean.append(sep.join(clean_demos + [query_text]))
        corrupted.append(sep.join(bad_demos + [query_text]))
        zero_shot.append(query_text)
        demos_all.append(tuple(demos))
    return PromptSet(
        queries=tuple(queries),
        demos=tuple(demos_all),
        clean=tuple(clean),
        corrupted=tuple(corrupted),
        zero_shot=tuple(zero_shot),
        targets=tuple(target_text(q.output) for q in queries),
    )


def icl_prompts(task: Task, settings: PromptSettings, split: str = "train", n_prompts: int | None = None) -> PromptSet:
    """Prompts whose queries come from one split and whose demos come from the train split."""
    splits = split_task(task, settings.seed)
    source = {"train": splits.train, "valid": splits.valid, "test": splits.test}[split]
    return build_prompts(source, splits.train, settings, n_prompts)


def held_out_prompts(task: Task, settings: PromptSettings, n_eval: int) -> tuple[Splits, PromptSet]:
    """``(splits, prompts)``: at most ``n_eval`` held-out queries of the test split, their
    demonstrations from the train split: the queries every evaluation is scored on."""
    splits = split_task(task, settings.seed)
    return splits, build_prompts(splits.test, splits.train, settings, n_prompts=min(n_eval, len(splits.test)))
