"""``python -m core warm``: compute ahead of a class what the pages show, into the disk tier.

For each built-in task (or those of ``--tasks``) on the dashboard's default settings (10 shots,
20 prompts, seed 0, shuffled labels, the prob metric, the top-10 heads, layer auto, 50 test
queries, coefficient 1), every result of :func:`warm_entries` is computed once and written to
:mod:`core.result_files` under the dashboard's own key. A fresh server, or ``python -m core
attribution --task antonym``, then answers from disk without computing (or loading the model).

:func:`warm_entries` lists what is warmed: extend it (the lesson's and the recipes' results) by
adding an :class:`Entry` whose key is the one its page asks the store for.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

from core.cli.analysis import LazyModel
from core.cli.common import settings_of, spec_of
from core.errors import UserInputError
from core.models import ModelSpec
from core.result_keys import attribution_key, fv_key, hvector_key, prediction_key, workbench_key

# the dashboard's defaults (dashboard/state.py DEFAULTS; the pages' sliders)
METRIC = "prob"
TOP_K = 10
LAYER = "auto"
N_EVAL = 50
COEFF = 1.0


@dataclasses.dataclass(frozen=True)
class Entry:
    """One result to warm: its store key, and how to compute it from the model and the results
    of the entries before it (``done``: name -> value)."""

    name: str
    key: Callable[[dict[str, Any]], tuple]
    make: Callable[[Any, dict[str, Any]], Any]


def warm_entries(spec: ModelSpec, task: Any, settings: Any) -> list[Entry]:
    """What ``warm`` computes for one task, in order: the Model & prompts page's predictions,
    the workbench and attribution (Head attribution), the h-vector sweep (Task vectors) and the
    function vector of the top heads (Function vector)."""
    from core import fv
    from core.predict import predict
    from core.result_files import without_attribution

    def top(done: dict[str, Any]) -> list[tuple[int, int]]:
        return done["attribution"].top_heads(TOP_K)

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
    ]


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


def cmd_warm(args: argparse.Namespace) -> dict:
    from core.result_files import MISSING, ResultFiles
    from core.tasks import load_builtin

    if args.clear:  # the operator's "clear cached results" (the page hides it on a shared server)
        files = ResultFiles()
        return {"folder": str(files.folder), "deleted": files.clear()}
    names = task_names(args.tasks)
    spec, settings = spec_of(args), settings_of(args)
    files, model = ResultFiles(), LazyModel(args)
    t_all = time.perf_counter()
    summary = []
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        task = load_builtin(name)
        done: dict[str, Any] = {}
        computed = []
        for entry in warm_entries(spec, task, settings):
            key = entry.key(done)
            value = files.load(key)
            if value is MISSING:
                value = entry.make(model(), done)
                files.save(key, value)
                computed.append(entry.name)
            done[entry.name] = value
        seconds = time.perf_counter() - t0
        n = len(done)
        print(
            f"warm [{i}/{len(names)}] {name}: {n - len(computed)} of {n} results already stored, "
            f"{len(computed)} computed ({seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        summary.append({"task": name, "computed": computed, "stored": n, "seconds": seconds})
    return {
        "model": spec.model_id,
        "settings": settings.to_dict(),
        "folder": str(files.folder),
        "tasks": summary,
        "seconds": time.perf_counter() - t_all,
    }
