"""``python -m core warm``: compute ahead of a class what the pages show, into the disk tier.

For each built-in task (or those of ``--tasks``) on the dashboard's default settings (10 shots,
20 prompts, seed 0, shuffled labels, the prob metric, the top-10 heads, layer auto, 50 test
queries, coefficient 1), every result of :func:`warm_entries` is computed once and written to
:mod:`core.result_files` under the dashboard's own key; then, once per model, the guided
lesson's and the recipes' own results (:func:`course_entries`, the requests of
:mod:`core.course`). A fresh server, or ``python -m core attribution --task antonym``, then
answers from disk without computing (or loading the model).

To warm another result, add an :class:`Entry` whose key is the one its page asks the store for
(:mod:`core.result_keys`) and whose ``make`` is the page's computation.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

from core import course
from core.cli.analysis import LazyModel
from core.cli.common import settings_of, spec_of
from core.errors import UserInputError
from core.models import ModelSpec
from core.result_keys import (
    additions_key,
    anatomy_key,
    attribution_key,
    caa_key,
    digest,
    fv_key,
    held_out_fv_key,
    hvector_key,
    prediction_key,
    query_effects_key,
    steer_key,
    workbench_key,
)

# the dashboard's defaults (dashboard/state.py DEFAULTS; the pages' sliders)
METRIC = "prob"
TOP_K = 10
LAYER = "auto"
N_EVAL = course.N_EVAL
COEFF = 1.0


@dataclasses.dataclass(frozen=True)
class Entry:
    """One result to warm: its store key, and how to compute it from the model and the results
    of the entries before it (``done``: name -> value). A key of None: nothing to warm (the
    request does not apply, e.g. a steering prompt that names too many of the task's pairs)."""

    name: str
    key: Callable[[dict[str, Any]], tuple | None]
    make: Callable[[Any, dict[str, Any]], Any]


def warm_entries(spec: ModelSpec, task: Any, settings: Any) -> list[Entry]:
    """What ``warm`` computes for one task, in order: the Model & prompts page's predictions,
    the workbench and attribution (Head attribution), the h-vector sweep (Task vectors), the
    function vector of the top heads (Function vector), then the lesson's own results for the
    task: step 2's per-query table and step 3's held-out vector and its steered generation."""
    from core import fv, steer
    from core.held_out import without_prompt_pairs
    from core.predict import predict
    from core.query_effects import hvector_query_effects
    from core.result_files import without_attribution

    def top(done: dict[str, Any]) -> list[tuple[int, int]]:
        return done["attribution"].top_heads(TOP_K)

    steer_prompt = course.fv_steer_prompt(task.name)
    try:
        held, _ = without_prompt_pairs(task, steer_prompt)
    except UserInputError:
        held = None

    def held_key(d: dict[str, Any]) -> tuple | None:
        return None if held is None else held_out_fv_key(spec, held, settings, top(d), d["fv"].layer)

    return [
        Entry("prediction", lambda d: prediction_key(spec, task, settings), lambda lm, d: predict(lm, task, settings)),
        Entry(
            "workbench",
            lambda d: workbench_key(spec, task, settings),
            lambda lm, d: without_attribution(fv.build_workbench(lm, task, settings)),
        ),
        Entry(
            "attribution",
            lambda d: attribution_key(spec, task, settings, METRIC),
            lambda lm, d: fv.indirect_effects(
                lm, d["workbench"].prompts, d["workbench"].stats.mean_heads, metric=METRIC
            ),
        ),
        Entry(
            "hvector",
            lambda d: hvector_key(spec, task, settings, N_EVAL),
            lambda lm, d: fv.hvector_sweep(lm, d["workbench"], N_EVAL),
        ),
        Entry(
            "fv",
            lambda d: fv_key(spec, task, settings, METRIC, top(d), LAYER, N_EVAL, COEFF),
            lambda lm, d: fv.evaluate(
                lm,
                dataclasses.replace(d["workbench"], attribution=d["attribution"]),
                top(d),
                layer=LAYER,
                n_eval=N_EVAL,
                coeff=COEFF,
            ),
        ),
        Entry(
            "lesson_queries",
            lambda d: query_effects_key(spec, task, settings, d["hvector"].best_layer, course.N_TABLE),
            lambda lm, d: hvector_query_effects(
                lm,
                task,
                settings,
                d["workbench"].stats.hvector[d["hvector"].best_layer],
                d["hvector"].best_layer,
                course.N_TABLE,
            ),
        ),
        Entry(
            "lesson_fv",
            held_key,
            lambda lm, d: fv.make_vector(
                lm, fv.build_workbench(lm, held, settings), top(d), d["fv"].layer, name=course.HELD_OUT_FV
            ),
        ),
        Entry(
            "lesson_fv_steer",
            lambda d: (
                None
                if held is None
                else steer_key(
                    spec,
                    (steer_prompt,),
                    digest(d["lesson_fv"].values),
                    d["fv"].layer,
                    course.FV_COEFF,
                    "last",
                    course.FV_MAX_NEW,
                    steer.Decoding(),
                )
            ),
            lambda lm, d: steer.generate_pair(
                lm,
                [steer_prompt],
                d["lesson_fv"].values,
                d["fv"].layer,
                course.FV_COEFF,
                "last",
                course.FV_MAX_NEW,
                **steer.Decoding().kwargs(),
            ),
        ),
    ]


def course_entries(spec: ModelSpec, model: Callable[[], Any]) -> list[Entry]:
    """The lesson's and the recipes' results that need no task, on :mod:`core.course`'s
    settings: step 1's trace, step 4's activation additions and their sampled generations (the
    default Love - Hate and every recipe's), step 5's contrastive vector and its generation.
    ``model()``: the loaded model (its depth scales the course's layers; its tokenizer gives the
    beginning-of-sequence token)."""
    from core import steer
    from core.additions import addition_sum, parse_additions, with_bos
    from core.anatomy import anatomy
    from core.steering_vectors import caa_vectors

    def n_layers() -> int:
        return model().arch.n_layers

    def additions(e: course.AdditionsExperiment) -> tuple:
        return tuple(parse_additions(e.additions, course.scaled_layer(e.layer, n_layers())))

    entries = [
        Entry(
            "lesson_trace",
            lambda d: anatomy_key(spec, course.ANATOMY_PROMPT, course.scaled_layer(course.ANATOMY_LAYER, n_layers())),
            lambda lm, d: anatomy(lm, course.ANATOMY_PROMPT, course.scaled_layer(course.ANATOMY_LAYER, n_layers())),
        ),
    ]
    for i, e in enumerate(course.ADDITIONS_EXPERIMENTS):
        name = f"lesson_additions_{i}"

        def prompt(e: course.AdditionsExperiment = e) -> str:
            return with_bos(model(), e.prompt) if course.ADD_BOS else e.prompt

        entries += [
            Entry(
                name,
                lambda d, e=e: additions_key(spec, additions(e), course.ADD_BOS),
                lambda lm, d, e=e: addition_sum(lm, list(additions(e)), course.ADD_BOS),
            ),
            Entry(
                f"{name}_steer",
                lambda d, name=name, prompt=prompt: steer_key(
                    spec,
                    (prompt(),),
                    digest(d[name].values),
                    d[name].layer,
                    1.0,
                    "prompt",
                    course.ADD_MAX_NEW,
                    course.add_sampling(),
                    d[name].more,
                ),
                lambda lm, d, name=name, prompt=prompt: steer.generate_pair(
                    lm,
                    [prompt()],
                    d[name].values,
                    d[name].layer,
                    1.0,
                    "prompt",
                    course.ADD_MAX_NEW,
                    **course.add_sampling().kwargs(),
                    more=d[name].more,
                ),
            ),
        ]
    caa_layer = lambda: course.caa_layer(n_layers())  # noqa: E731
    entries += [
        Entry("lesson_caa", lambda d: caa_key(spec, course.CAA_PAIRS), lambda lm, d: caa_vectors(lm, course.CAA_PAIRS)),
        Entry(
            "lesson_caa_steer",
            lambda d: steer_key(
                spec,
                (course.CAA_PROMPT,),
                digest(d["lesson_caa"][caa_layer()]),
                caa_layer(),
                course.CAA_COEFF,
                "last",
                course.CAA_MAX_NEW,
                steer.Decoding(),
            ),
            lambda lm, d: steer.generate_pair(
                lm,
                [course.CAA_PROMPT],
                d["lesson_caa"][caa_layer()],
                caa_layer(),
                course.CAA_COEFF,
                "last",
                course.CAA_MAX_NEW,
                **steer.Decoding().kwargs(),
            ),
        ),
    ]
    return entries


def task_names(text: str | None) -> list[str]:
    """The built-in tasks named in ``--tasks`` (all of them when None), each checked."""
    from core.tasks import builtin_names, normalize_name

    known = builtin_names()
    if text is None:
        return known
    names = [normalize_name(n) for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise UserInputError(
            f"--tasks: unknown task {', '.join(unknown) or '(none given)'}; built-in tasks: {', '.join(known)}."
        )
    return list(dict.fromkeys(names))


def warm_group(files: Any, entries: list[Entry], model: Callable[[], Any]) -> tuple[list[str], int]:
    """Compute and store each entry not already on disk: ``(names computed, results there)``."""
    from core.result_files import MISSING

    done: dict[str, Any] = {}
    computed = []
    for entry in entries:
        key = entry.key(done)
        if key is None:
            continue
        value = files.load(key)
        if value is MISSING:
            value = entry.make(model(), done)
            files.save(key, value)
            computed.append(entry.name)
        done[entry.name] = value
    return computed, len(done)


def cmd_warm(args: argparse.Namespace) -> dict:
    from core.result_files import ResultFiles
    from core.tasks import load_builtin

    if args.clear:  # the operator's "clear cached results" (the page hides it on a shared server)
        files = ResultFiles()
        return {"folder": str(files.folder), "deleted": files.clear()}
    names = task_names(args.tasks)
    spec, settings = spec_of(args), settings_of(args)
    files, model = ResultFiles(), LazyModel(args)
    t_all = time.perf_counter()
    summary = []
    groups = [(name, lambda name=name: warm_entries(spec, load_builtin(name), settings)) for name in names]
    groups.append(("lesson", lambda: course_entries(spec, model)))  # once per model: no task
    for i, (name, entries) in enumerate(groups, 1):
        t0 = time.perf_counter()
        computed, n = warm_group(files, entries(), model)
        seconds = time.perf_counter() - t0
        print(
            f"warm [{i}/{len(groups)}] {name}: {n - len(computed)} of {n} results already stored, "
            f"{len(computed)} computed ({seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        summary.append({"task": name, "computed": computed, "stored": n, "seconds": seconds})
    return {
        "model": spec.model_id,
        "settings": settings.to_dict(),
        "folder": str(files.folder),
        "tasks": summary[:-1],
        "lesson": summary[-1],
        "seconds": time.perf_counter() - t_all,
    }
