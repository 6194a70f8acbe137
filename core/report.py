"""The Task report: does this model do a task in context, which heads carry it, is there a
function vector, at which layer, and does it steer free text, in one run.

The method is Todd et al. (2023), "Function Vectors in Large Language Models": mean head
outputs over clean in-context prompts, each head's causal indirect effect on shuffled-label
prompts (section 2.2), the function vector of the top heads added at one layer of zero-shot
prompts, the layer chosen on validation queries and every figure scored on held-out test
queries (section 2.3), and the h-vector layer sweep (section 2.1). A steered free generation
(:mod:`core.steer`, ``"last"`` mode) shows the vector at work on text.

**Stages share work.** Four stages, each reported by name on one progress callback
(:data:`STAGES`):

1. one clean forward over the in-context build prompts (:func:`core.fv.build_workbench`)
   gives the mean head outputs, the h-vector of every layer and the build prompts'
   in-context accuracy; no separate prediction is run;
2. head attribution on the shuffled prompts (:func:`core.fv.run_attribution`);
3. :func:`core.fv.evaluate`, which already holds the zero-shot and in-context baselines on
   the test queries, the layer choice, the layer sweeps and the h-vector sweep (so the
   h-vector is not swept on its own);
4. one batched generation, unsteered and steered rows together.

The dashboard passes store-backed :class:`Stages`, so a workbench, attribution or function
vector already computed for another page (same model, task, settings) is reused, not redone.

**Core stays free of the UI.** A :class:`TaskReport` is numbers, verdict sentences (built
here, so they are tested), JSON (:meth:`TaskReport.to_json`) and figure specs as plain
plotly.js dictionaries (:mod:`core.figure_specs`). The self-contained HTML file is written by
:mod:`core.report_html` from those specs; the page shows the same specs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core import checks, fv
from core import figure_specs as specs
from core.attribution import Attribution
from core.inference import Progress, no_progress
from core.models import LoadedModel
from core.prompts import PromptSettings, render_query, split_task
from core.stats import Accuracy
from core.steer import PairResult, generate_pair
from core.steer_diff import first_divergence
from core.tasks import Task

# verdict thresholds
ICL_DOES = 0.6  # in-context accuracy from which "the model does this task in context"
ICL_LITTLE = 0.3  # below this, "there is little task to extract"
MIN_LIFT = 0.1  # a vector "lifts" accuracy by at least this much, and its 95% CI clears the baseline
MOST = 0.5  # "carry most of the effect": this share of the top heads' total indirect effect
MAX_NAMED_HEADS = 3

# (key, name shown on the progress bar, share of the bar): the four stages in order
STAGES = (
    ("clean", "1/4 In-context accuracy, mean head outputs, h-vectors (one clean forward)", 0.08),
    ("attribution", "2/4 Patching every head on shuffled prompts", 0.37),
    ("fv", "3/4 Function vector: layer on validation queries, layer and h-vector sweeps", 0.47),
    ("generation", "4/4 Steered free generation", 0.08),
)


@dataclass(frozen=True)
class ReportOptions:
    top_k: int = 10  # heads in the function vector
    n_eval: int = 50  # at most this many held-out test queries
    metric: str = "prob"  # attribution metric (core.attribution.METRICS)
    max_new_tokens: int = 30  # of the free generation
    prompt: str | None = None  # the free generation's prompt; None: made from a held-out query
    coeff: float = 1.0  # the function vector's coefficient (evaluation and generation)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Stages:
    """How each stage is computed: directly (:func:`direct_stages`), or through a cache."""

    workbench: Callable[[Progress], fv.Workbench]
    attribution: Callable[[fv.Workbench, Progress], Attribution]
    evaluate: Callable[[fv.Workbench, list[tuple[int, int]], Progress], fv.FVReport]
    generate: Callable[[str, fv.FVReport, Progress], PairResult]


def direct_stages(lm: LoadedModel, task: Task, settings: PromptSettings, options: ReportOptions) -> Stages:
    """Every stage computed on ``lm``, nothing cached."""
    return Stages(
        workbench=lambda p: fv.build_workbench(lm, task, settings, progress=p),
        attribution=lambda wb, p: fv.run_attribution(lm, wb, metric=options.metric, progress=p),
        evaluate=lambda wb, heads, p: fv.evaluate(
            lm, wb, heads, layer="auto", n_eval=options.n_eval, coeff=options.coeff, progress=p
        ),
        generate=lambda prompt, rep, p: generate_pair(
            lm, [prompt], rep.vector.values, rep.layer, options.coeff, "last", options.max_new_tokens, progress=p
        )[0],
    )


@dataclass(frozen=True)
class Generation:
    """The free generation, unsteered and steered (greedy, ``"last"`` mode)."""

    prompt: str
    unsteered: str
    steered: str
    layer: int
    coeff: float
    max_new_tokens: int
    query: str | None = None  # the held-out query the prompt was made from (None: typed by the user)
    target: str | None = None  # that query's answer

    @property
    def first_divergence(self) -> int | None:
        return first_divergence(self.unsteered, self.steered)

    def says_target(self, text: str) -> bool:
        """The continuation's first line contains the answer (ignoring case)."""
        if not self.target:
            return False
        first = text.strip().split("\n")[0]
        return self.target.strip().casefold() in first.casefold()

    def to_json(self) -> dict:
        return {
            "prompt": self.prompt,
            "unsteered": self.unsteered,
            "steered": self.steered,
            "layer": self.layer,
            "coeff": self.coeff,
            "max_new_tokens": self.max_new_tokens,
            "query": self.query,
            "target": self.target,
            "first_divergence": self.first_divergence,
        }


def held_out_prompt(task: Task, settings: PromptSettings) -> tuple[str, str, str]:
    """``(prompt, query, answer)``: the first held-out test query, rendered zero-shot."""
    query = split_task(task, settings.seed).test[0]
    return render_query(settings.template, query.input), query.input, query.output


def _pct(a: Accuracy) -> str:
    low, high = a.interval
    return f"{a.value:.0%} on {a.n} queries, 95% CI {low:.0%}-{high:.0%}"


def _head(h: tuple[int, int]) -> str:
    return f"{h[0]}.{h[1]}"


def _names(heads: list[tuple[int, int]]) -> str:
    labels = [_head(h) for h in heads]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


@dataclass(frozen=True)
class TaskReport:
    model_id: str
    n_layers: int
    n_heads: int
    task: str
    n_pairs: int
    settings: PromptSettings
    options: ReportOptions
    icl_build: Accuracy  # the clean forward's accuracy on the build prompts
    cie: tuple[tuple[float, ...], ...]  # [n_layers][n_heads]
    top_heads: tuple[tuple[int, int], ...]  # largest effect first; the function vector's heads
    fv: fv.FVReport
    generation: Generation
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    # ---- numbers -----------------------------------------------------------------------
    def accuracy(self, value: float) -> Accuracy:
        """An accuracy measured on the held-out test queries, with its interval."""
        return Accuracy.of(value, self.fv.n_eval)

    @property
    def n_shots(self) -> int:
        return self.settings.n_shots

    def effect_share(self) -> tuple[list[tuple[int, int]], float]:
        """The fewest top heads carrying at least :data:`MOST` of the top heads' total positive
        effect, and their share; ``([], 0.0)`` when no top head has a positive effect."""
        effects = [max(0.0, self.cie[l][h]) for l, h in self.top_heads]
        total = sum(effects)
        if total <= 0:
            return [], 0.0
        running = 0.0
        for i, e in enumerate(effects):
            running += e
            if running >= MOST * total:
                return list(self.top_heads[: i + 1]), running / total
        return list(self.top_heads), 1.0

    # ---- sentences -----------------------------------------------------------------------
    def verdict(self) -> list[str]:
        """Plain sentences that state what the numbers say, negatives included."""
        r = self.fv
        icl, zs, zs_fv = (
            self.accuracy(r.icl_accuracy),
            self.accuracy(r.zero_shot_baseline),
            self.accuracy(r.zero_shot_with_fv),
        )
        out = []
        if icl.value >= ICL_DOES:
            out.append(f"The model does this task in context ({_pct(icl)}; {self.n_shots} shots).")
        elif icl.value >= ICL_LITTLE:
            out.append(f"The model does this task only partly in context ({_pct(icl)}; {self.n_shots} shots).")
        else:
            low, high = icl.interval
            out.append(
                f"In-context accuracy is {icl.value:.0%} (on {icl.n} queries, 95% CI {low:.0%}-{high:.0%}; "
                f"{self.n_shots} shots): there is little task to extract."
            )
        out.append(f"Without examples (zero-shot) it answers {zs.value:.0%} correctly.")
        k, where = len(r.heads), f"layer {r.layer} of {self.n_layers}"
        if zs_fv.value - zs.value >= MIN_LIFT and zs_fv.interval[0] > zs.value:
            low, high = zs_fv.interval
            out.append(
                f"A function vector of {k} heads restores {zs_fv.value:.0%} zero-shot at {where} "
                f"(from {zs.value:.0%}; 95% CI {low:.0%}-{high:.0%})."
            )
        else:
            out.append(
                f"A function vector of {k} heads does not clearly lift zero-shot accuracy: "
                f"{zs.value:.0%} -> {zs_fv.value:.0%} at {where}, the best layer on validation queries."
            )
        carriers, share = self.effect_share()
        if not carriers:
            out.append("No head raises the answer's probability on shuffled prompts.")
        elif len(carriers) <= MAX_NAMED_HEADS:
            verb = "carries" if len(carriers) == 1 else "carry"
            head_word = "Head" if len(carriers) == 1 else "Heads"
            out.append(
                f"{head_word} {_names(carriers)} {verb} most of the effect "
                f"({share:.0%} of the top {len(self.top_heads)} heads' total indirect effect)."
            )
        else:
            top = list(self.top_heads[:MAX_NAMED_HEADS])
            effects = [max(0.0, self.cie[l][h]) for l, h in self.top_heads]
            part = sum(effects[:MAX_NAMED_HEADS]) / sum(effects)
            out.append(
                f"The effect is spread over many heads: the top {len(top)} ({_names(top)}) carry "
                f"{part:.0%} of the top {len(self.top_heads)} heads' total."
            )
        sh, sh_fv = self.accuracy(r.shuffled_baseline), self.accuracy(r.shuffled_with_fv)
        out.append(f"On shuffled-label prompts the vector takes accuracy from {sh.value:.0%} to {sh_fv.value:.0%}.")
        hv = self.accuracy(r.hvector_best_accuracy)
        if hv.value - zs.value >= MIN_LIFT and hv.interval[0] > zs.value:
            out.append(f"The h-vector works best at layer {r.hvector_best_layer}: {hv.value:.0%} zero-shot.")
        else:
            out.append(
                f"The h-vector lifts zero-shot accuracy at no layer (best: {hv.value:.0%} at layer {r.hvector_best_layer})."
            )
        gen_with = getattr(r, "zero_shot_with_fv_generation_accuracy", None)
        gen_without = getattr(r, "zero_shot_generation_accuracy", None)
        if gen_with is not None and gen_without is not None and getattr(r, "generation_max_new_tokens", 1):
            out.append(
                f"Scored on whole generated answers: {gen_without:.0%} without the vector, {gen_with:.0%} with it."
            )
        g = self.generation
        if g.target is not None:
            steered_ok, unsteered_ok = g.says_target(g.steered), g.says_target(g.unsteered)
            if steered_ok and not unsteered_ok:
                out.append(
                    f"Steered, the free generation on {g.prompt!r} gives the answer {g.target!r}; unsteered it does not."
                )
            elif steered_ok:
                out.append(
                    f"The free generation on {g.prompt!r} gives the answer {g.target!r} with and without the vector."
                )
            else:
                out.append(f"Steered, the free generation on {g.prompt!r} does not give the answer {g.target!r}.")
        elif g.first_divergence is None:
            out.append("The steered free generation is the same as the unsteered one.")
        else:
            out.append(f"The steered free generation departs from the unsteered one at character {g.first_divergence}.")
        if r.overlap:
            out.append(
                f"The task is small ({self.n_pairs} pairs): test queries overlap the build queries, "
                "so these accuracies are optimistic."
            )
        return out

    # ---- exports ------------------------------------------------------------------------
    def figures(self) -> dict[str, specs.Spec]:
        """The report's figures as plotly.js specs: heatmap, layer curves, heads curve, decoded tokens."""
        r = self.fv
        series = {"zero-shot + FV": r.zero_shot_by_layer, "zero-shot + h-vector": r.hvector_by_layer}
        if r.valid_by_layer:
            series["validation, zero-shot + FV"] = r.valid_by_layer
        return {
            "heatmap": specs.head_heatmap(
                self.cie, list(self.top_heads), f"Causal indirect effect ({self.options.metric}) - {self.task}"
            ),
            "layers": specs.layer_curves(
                series,
                "Accuracy with the vector added at each layer",
                baselines={"zero-shot": r.zero_shot_baseline, "in-context": r.icl_accuracy},
                marked=r.layer,
            ),
            "heads": specs.count_curve(
                r.heads_curve, r.zero_shot_baseline, f"Top heads used (layer {r.layer})", "number of top heads"
            ),
            "decoded": specs.bars(
                [t for t, _ in r.decoded_tokens],
                [s for _, s in r.decoded_tokens],
                "Tokens the vector promotes",
                "logit",
            ),
        }

    def to_json(self) -> dict[str, Any]:
        """The report as JSON: headline numbers (each accuracy ``k`` with ``k_ci`` beside it),
        the CIE grid, the generation, the verdict, and the whole function-vector report."""
        r = self.fv
        accuracies = {
            "icl_accuracy": r.icl_accuracy,
            "zero_shot_accuracy": r.zero_shot_baseline,
            "zero_shot_with_fv": r.zero_shot_with_fv,
            "shuffled_baseline": r.shuffled_baseline,
            "shuffled_with_fv": r.shuffled_with_fv,
            "hvector_best_accuracy": r.hvector_best_accuracy,
        }
        for name in ("zero_shot_generation_accuracy", "zero_shot_with_fv_generation_accuracy"):
            if hasattr(r, name):  # whole-answer scoring, where core.fv provides it
                accuracies[name] = getattr(r, name)
        out: dict[str, Any] = {"model": self.model_id, "task": self.task, "n_pairs": self.n_pairs}
        out["n_shots"] = self.n_shots
        out["settings"] = self.settings.to_dict()
        out["options"] = self.options.to_dict()
        out["n_eval"] = r.n_eval
        for name, value in accuracies.items():
            out[name] = value
            out[name + "_ci"] = self.accuracy(value).to_json()
        out["icl_accuracy_build_prompts"] = self.icl_build.value
        out["icl_accuracy_build_prompts_ci"] = self.icl_build.to_json()
        out["top_heads"] = [[l, h, self.cie[l][h]] for l, h in self.top_heads]
        out["cie"] = [list(row) for row in self.cie]
        out["metric"] = self.options.metric
        out["layer"] = r.layer
        out["layer_choice"] = r.layer_choice
        out["hvector_best_layer"] = r.hvector_best_layer
        out["generation"] = self.generation.to_json()
        out["verdict"] = self.verdict()
        out["stage_seconds"] = dict(self.stage_seconds)
        out["seconds"] = self.seconds
        out["function_vector"] = r.to_json()
        return out


def _stage_progress(progress: Progress, key: str) -> Progress:
    """Fractions ``0..1`` of stage ``key`` mapped onto its share of the one bar, named."""
    lo = 0.0
    for k, name, share in STAGES:
        if k == key:
            return lambda f, m: progress(lo + share * min(max(f, 0.0), 1.0), f"{name}: {m}")
        lo += share
    raise KeyError(key)


def build_report(
    lm: LoadedModel,
    task: Task,
    settings: PromptSettings,
    options: ReportOptions = ReportOptions(),
    progress: Progress = no_progress,
    stages: Stages | None = None,
) -> TaskReport:
    """Run the four stages (see the module docstring) and assemble the report."""
    checks.check_n_heads(options.top_k, lm)
    checks.check_max_new_tokens(options.max_new_tokens)
    checks.check_coeff(options.coeff)
    if options.prompt is not None:
        checks.check_text(options.prompt, "generation prompt")
    stages = stages or direct_stages(lm, task, settings, options)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()

    def timed(key: str, fn: Callable[[Progress], Any]) -> Any:
        start = time.perf_counter()
        p = _stage_progress(progress, key)
        p(0.0, "starting")
        result = fn(p)
        seconds[key] = time.perf_counter() - start
        p(1.0, "done")
        return result

    wb = timed("clean", stages.workbench)
    at = timed("attribution", lambda p: stages.attribution(wb, p))
    heads = at.top_heads(options.top_k)
    rep = timed("fv", lambda p: stages.evaluate(wb, heads, p))
    if options.prompt is not None:
        prompt, query, target = options.prompt, None, None
    else:
        prompt, query, target = held_out_prompt(task, settings)
    pair = timed("generation", lambda p: stages.generate(prompt, rep, p))
    generation = Generation(
        prompt=prompt,
        unsteered=pair.unsteered[0],
        steered=pair.steered[0],
        layer=rep.layer,
        coeff=options.coeff,
        max_new_tokens=options.max_new_tokens,
        query=query,
        target=target,
    )
    return TaskReport(
        model_id=lm.model_id,
        n_layers=lm.arch.n_layers,
        n_heads=lm.arch.n_heads,
        task=task.name,
        n_pairs=len(task),
        settings=settings,
        options=options,
        icl_build=Accuracy.of(wb.stats.icl_accuracy, wb.stats.n_prompts),
        cie=tuple(tuple(float(v) for v in row) for row in at.cie.tolist()),
        top_heads=tuple(heads),
        fv=rep,
        generation=generation,
        stage_seconds=seconds,
        seconds=time.perf_counter() - t0,
    )
