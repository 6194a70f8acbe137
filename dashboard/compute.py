"""The boundary between pages and core: cached results (the shared model and the server's
settings are in :mod:`dashboard.server`; the progress bar, Cancel and the wait display in
:mod:`dashboard.running`).

Caching lives only here and in :mod:`dashboard.server` (the model). Results live in the
shared :class:`dashboard.store.ResultStore`, keyed per (model spec, task, prompt settings,
seed, parameters), so moving between pages never recomputes them and a stored result never
waits for the model.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import streamlit as st

from core import course, fv, limits
from core import result_keys as keys
from core.errors import UserInputError
from core.inference import no_progress
from core.models import LoadedModel, ModelSpec
from core.prompts import PromptSettings
from core.result_keys import digest  # the pages key vectors with it (compute.digest)
from core.tasks import Task
from dashboard.running import from_any_thread
from dashboard.store import ResultStore

if TYPE_CHECKING:
    from core.sweep import SweepResult


# ---- cached results --------------------------------------------------------------------
# One ResultStore (dashboard.store) shared by all sessions, keyed on (what, model spec, task,
# settings, params).


@st.cache_resource
def store() -> ResultStore:
    return ResultStore(limits.MAX_CACHED_RESULTS, limits.MAX_CACHE_MB * 1024 * 1024)


def workbench(spec: ModelSpec, task: Task, settings: PromptSettings, _lm: LoadedModel, _progress=None):
    return store().get(
        keys.workbench_key(spec, task, settings),
        lambda: fv.build_workbench(_lm, task, settings, progress=_progress or no_progress),
    )


def attribution(spec: ModelSpec, task: Task, settings: PromptSettings, metric: str, _lm: LoadedModel, _progress=None):
    def make():
        wb = workbench(spec, task, settings, _lm)
        return fv.indirect_effects(
            _lm, wb.prompts, wb.stats.mean_heads, metric=metric, progress=_progress or no_progress
        )

    return store().get(keys.attribution_key(spec, task, settings, metric), make)


def prediction(spec: ModelSpec, task: Task, settings: PromptSettings, _lm: LoadedModel, _progress=None):
    from core.predict import predict

    return store().get(
        keys.prediction_key(spec, task, settings),
        lambda: predict(_lm, task, settings, progress=_progress or no_progress),
    )


def induction(spec: ModelSpec, _lm: LoadedModel, _progress=None):
    """core.induction.induction_scores on the default repeated random sequences."""
    from core.induction import induction_scores

    return store().get(("induction", spec), lambda: induction_scores(_lm, progress=_progress or no_progress))


def heads_comparison(
    spec: ModelSpec, task: Task, settings: PromptSettings, metric: str, n_eval: int, _lm: LoadedModel, _progress=None
):
    """Induction scores against the indirect effects, and both ablation curves, over the cached
    workbench and attribution."""
    from core import induction as ind

    def make():
        wb = workbench(spec, task, settings, _lm)
        return ind.compare_heads(
            _lm,
            ind.ablation_prompts(task, settings, n_eval),
            wb.stats.mean_heads,
            attribution(spec, task, settings, metric, _lm),
            induction(spec, _lm),
            progress=_progress or no_progress,
        )

    return store().get(("heads_comparison", spec, task, settings, metric, n_eval), make)


def hvector_sweep(
    spec: ModelSpec, task: Task, settings: PromptSettings, n_eval: int, _lm: LoadedModel, _progress=None
) -> fv.HVectorSweep:
    """core.fv.hvector_sweep over the cached workbench."""

    def make():
        wb = workbench(spec, task, settings, _lm)
        return fv.hvector_sweep(_lm, wb, n_eval, progress=_progress or no_progress)

    return store().get(keys.hvector_key(spec, task, settings, n_eval), make)


def fv_report(
    spec: ModelSpec,
    task: Task,
    settings: PromptSettings,
    metric: str,
    heads: tuple,
    layer: Any,
    n_eval: int,
    coeff: float,
    _lm: LoadedModel,
    _progress=None,
):
    def make():
        wb = dataclasses.replace(
            workbench(spec, task, settings, _lm), attribution=attribution(spec, task, settings, metric, _lm)
        )
        return fv.evaluate(
            _lm, wb, list(heads), layer=layer, n_eval=n_eval, coeff=coeff, progress=_progress or no_progress
        )

    return store().get(keys.fv_key(spec, task, settings, metric, heads, layer, n_eval, coeff), make)


def compare_tasks(
    spec: ModelSpec,
    tasks: tuple[Task, ...],
    settings: PromptSettings,
    metric: str,
    top_k: int,
    layer: Any,
    n_eval: int,
    _lm: LoadedModel,
    _progress=None,
):
    """core.compare.compare_tasks, each task's workbench and attribution taken from the store
    (the same results as Head attribution's, so a task seen there is not patched again)."""
    from core import compare

    def task_workbench(task: Task, progress) -> fv.Workbench:
        wb = workbench(spec, task, settings, _lm, compare.span(progress, 0.0, 0.15))
        at = attribution(spec, task, settings, metric, _lm, compare.span(progress, 0.15, 1.0))
        return dataclasses.replace(wb, attribution=at)

    def make():
        return compare.compare_tasks(
            _lm,
            list(tasks),
            settings,
            top_k=top_k,
            layer=layer,
            n_eval=n_eval,
            metric=metric,
            progress=_progress or no_progress,
            workbench=task_workbench,
        )

    return store().get(("compare", spec, tasks, settings, metric, top_k, layer, n_eval), make)


def task_report(spec: ModelSpec, task: Task, settings: PromptSettings, options: Any, _lm: LoadedModel, _progress=None):
    """core.report.build_report (``options``: a core.report.ReportOptions), every stage taken
    from the store: the workbench, attribution, function vector and generation are the same
    results the other pages show, so a stage already computed there is not run again."""
    from core import report, steer

    def evaluate(wb, heads, progress):
        return fv_report(
            spec, task, settings, options.metric, tuple(heads), "auto", options.n_eval, options.coeff, _lm, progress
        )

    def generate(prompt, rep, progress):
        values = rep.vector.values
        pairs = steer_pair(
            spec,
            (prompt,),
            digest(values),
            values,
            rep.layer,
            options.coeff,
            "last",
            options.max_new_tokens,
            steer.Decoding(),
            _lm,
            progress,
        )
        return pairs[0]

    stages = report.Stages(
        workbench=lambda progress: workbench(spec, task, settings, _lm, progress),
        attribution=lambda wb, progress: attribution(spec, task, settings, options.metric, _lm, progress),
        evaluate=evaluate,
        generate=generate,
    )
    return store().get(
        ("report", spec, task, settings, options),
        lambda: report.build_report(_lm, task, settings, options, progress=_progress or no_progress, stages=stages),
    )


def attention(spec: ModelSpec, prompt: str, layer: int, _lm: LoadedModel, _progress=None):
    from core.attention import attention_pattern

    return store().get(("attention", spec, prompt, layer), lambda: attention_pattern(_lm, prompt, layer))


# ---- steering: Steer, Steering vectors, Vector library ------------------------------------
# Vectors are keyed by their digest (core.result_keys.digest, imported above for the pages).


def vectors_for(lm: LoadedModel) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Vectors usable with the loaded model: ``(name -> Vector, name -> "library"|"session", problems)``.

    The library's files for this model, plus vectors made or uploaded in this session (a
    session vector with a library name is the same vector: saving puts it in both). Files
    that fail to load are reported, not raised.
    """
    from core.library import Library, default_library_dir

    lib = Library(default_library_dir())
    found: dict[str, Any] = {}
    where: dict[str, str] = {}
    problems: list[str] = []
    for name in lib.names(lm.model_id):
        try:
            found[name] = lib.load(lm.model_id, name, expect_d_model=lm.arch.d_model)
            where[name] = "library"
        except UserInputError as exc:
            problems.append(str(exc))
    for name, vec in st.session_state.get("session_vectors", {}).items():
        if vec.model_id == lm.model_id and vec.d_model == lm.arch.d_model and name not in found:
            found[name] = vec
            where[name] = "session"
    return dict(sorted(found.items())), where, problems


def resid_norms(spec: ModelSpec, prompts: tuple[str, ...], _lm: LoadedModel, _progress=None) -> list[float]:
    """``[n_layers]`` typical last-token residual norm over ``prompts`` (a scale for coefficients)."""
    from core import steering_vectors

    return store().get(
        ("resid_norms", spec, prompts), lambda: steering_vectors.resid_norms(_lm, list(prompts)).tolist()
    )


def steer_pair(
    spec: ModelSpec,
    prompts: tuple[str, ...],
    key: str,
    values: Any,
    layer: int,
    coeff: float,
    mode: str,
    max_new_tokens: int,
    decoding: Any,
    _lm: LoadedModel,
    _progress=None,
    more: tuple = (),
):
    """core.steer.generate_pair, cached on (model, prompts, vector digest, settings, decoding incl. seed).

    ``more``: ``(layer, values)`` added at further layers ("prompt" mode; the lesson's list of
    activation additions), keyed by their digests."""
    from core import steer

    def make():
        return steer.generate_pair(
            _lm,
            list(prompts),
            values,
            layer,
            coeff,
            mode,
            max_new_tokens,
            **decoding.kwargs(),
            progress=from_any_thread(_progress),
            more=more,
        )

    return store().get(keys.steer_key(spec, prompts, key, layer, coeff, mode, max_new_tokens, decoding, more), make)


def actadd(spec: ModelSpec, positive: str, negative: str, layers: tuple[int, ...], _lm: LoadedModel, _progress=None):
    """core.steering_vectors.actadd_vectors, all ``layers`` from one forward:
    ``({layer: values [n_pos, d_model]}, aligned tokens)``."""
    from core import steering_vectors

    return store().get(
        ("actadd", spec, positive, negative, layers),
        lambda: steering_vectors.actadd_vectors(_lm, positive, negative, list(layers)),
    )


def caa(spec: ModelSpec, pairs: tuple[tuple[str, str], ...], _lm: LoadedModel, _progress=None):
    """core.steering_vectors.caa_vectors: ``[n_layers, d_model]``."""
    from core import steering_vectors

    return store().get(
        keys.caa_key(spec, pairs),
        lambda: steering_vectors.caa_vectors(_lm, list(pairs), progress=from_any_thread(_progress)),
    )


def steer_sweep(
    spec: ModelSpec,
    prompt: str,
    by_layer: tuple[tuple[int, str], ...],
    values: dict[int, Any],
    coeffs: tuple[float, ...],
    mode: str,
    max_new_tokens: int,
    target_word: str | None,
    keywords: tuple[str, ...],
    _lm: LoadedModel,
    _progress=None,
) -> SweepResult:
    """core.sweep.sweep over the whole grid, each layer with its own vector (``values[layer]``):
    a :class:`core.sweep.SweepResult`.

    ``by_layer``: ``(layer, digest of values[layer])`` pairs, in the grid's order: the cache key.
    """
    from core.sweep import sweep

    def make():
        vectors = {layer: values[layer] for layer, _ in by_layer}
        return sweep(
            _lm,
            prompt,
            vectors,
            list(coeffs),
            mode,
            max_new_tokens,
            target_word=target_word,
            keywords=list(keywords),
            progress=from_any_thread(_progress),
        )

    return store().get(("sweep", spec, prompt, by_layer, coeffs, mode, max_new_tokens, target_word, keywords), make)


def decode_vector(
    spec: ModelSpec, key: str, values: Any, k: int, _lm: LoadedModel, _progress=None
) -> list[tuple[str, float]]:
    """core.fv.decode_vector: the tokens a vector promotes (final norm, then unembedding)."""
    return store().get(("decode", spec, key, k), lambda: fv.decode_vector(_lm, values, k))


# ---- the guided lesson (pages/lesson_*.py): its own results, in the same store -------------
# Everything else a lesson step shows comes from the wrappers above, so a step and its tool
# page share their stored results.


def anatomy(spec: ModelSpec, prompt: str, layer: int, _lm: LoadedModel, _progress=None):
    """core.anatomy.anatomy: tokens, next-token top-k and activation shapes of one prompt."""
    from core import anatomy as an

    return store().get(keys.anatomy_key(spec, prompt, layer), lambda: an.anatomy(_lm, prompt, layer))


def query_effects(
    spec: ModelSpec, task: Task, settings: PromptSettings, layer: int, n: int, _lm: LoadedModel, _progress=None
):
    """core.query_effects for the h-vector of ``layer`` (the cached workbench's) on ``n`` held-out queries."""
    from core import query_effects as qe

    def make():
        wb = workbench(spec, task, settings, _lm)
        return qe.hvector_query_effects(_lm, task, settings, wb.stats.hvector[layer], layer, n)

    return store().get(keys.query_effects_key(spec, task, settings, layer, n), make)


def hvector(
    spec: ModelSpec, task: Task, settings: PromptSettings, layer: int, name: str, _lm: LoadedModel, _progress=None
):
    """core.fv.make_hvector: the h-vector of ``layer`` from the cached workbench, as a Vector."""
    return fv.make_hvector(_lm, workbench(spec, task, settings, _lm, _progress), layer, name=name)


def held_out_vector(
    spec: ModelSpec, task: Task, settings: PromptSettings, heads: tuple, layer: int, _lm: LoadedModel, _progress=None
):
    """The function vector of ``heads`` from ``task``'s own workbench (core.fv.make_vector):
    for a task with the steering prompt's pairs removed (core.held_out)."""

    def make():
        wb = workbench(spec, task, settings, _lm, _progress)
        return fv.make_vector(_lm, wb, list(heads), layer, name=course.HELD_OUT_FV)

    return store().get(keys.held_out_fv_key(spec, task, settings, heads, layer), make)


def addition_sum(spec: ModelSpec, additions: tuple, prepend_bos: bool, _lm: LoadedModel, _progress=None):
    """core.additions.addition_sum: the summed activation additions at their layer."""
    from core import additions as ad

    return store().get(
        keys.additions_key(spec, additions, prepend_bos), lambda: ad.addition_sum(_lm, list(additions), prepend_bos)
    )
