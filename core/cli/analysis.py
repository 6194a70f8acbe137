"""The commands that analyse a task: ``info``, ``predict``, ``attribution``, ``fv``, ``compare``,
``heads``, ``pairs`` and ``report``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.cli.common import file_error, int_arg, model_of, settings_of, spec_of, task_of
from core.cli.steering import save_target
from core.errors import UserInputError
from core.files import check_writable, write_atomic
from core.models import ModelSpec
from core.result_keys import attribution_key, fv_key, prediction_key, workbench_key
from core.results import top_heads

if TYPE_CHECKING:
    from core.tasks import Task


def cmd_info(args: argparse.Namespace) -> dict:
    return model_of(args).info()


class LazyModel:
    """The model, loaded on first use: a request answered from the disk tier never loads it."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.lm = args, None

    def __call__(self):
        if self.lm is None:
            self.lm = model_of(self.args)
        return self.lm


def cmd_predict(args: argparse.Namespace) -> dict:
    from core.result_files import ResultFiles, cached

    task, settings, spec = task_of(args), settings_of(args), spec_of(args)
    model = LazyModel(args)

    def make():
        from core.predict import predict

        return predict(model(), task, settings)

    result, hit = cached(ResultFiles(), prediction_key(spec, task, settings), make)
    return {"model": spec.model_id, "task": task.name, **result.to_json(), "from_cache": hit}


def cmd_attribution(args: argparse.Namespace) -> dict:
    from core.result_files import MISSING, ResultFiles, cached, without_attribution

    task, settings, spec = task_of(args), settings_of(args), spec_of(args)
    t0 = time.perf_counter()
    files = ResultFiles()
    wb_key, at_key = workbench_key(spec, task, settings), attribution_key(spec, task, settings, args.metric)
    if args.method == "fast":  # the dashboard's method: its results answer here
        wb = files.load(wb_key, classes=False)
        at = files.load(at_key, classes=False) if wb is not MISSING else MISSING
        if at is not MISSING:
            return _attribution_json(spec, task, settings, wb, at, t0, from_cache=True)
    from core import fv

    model = LazyModel(args)
    wb, _ = cached(files, wb_key, lambda: without_attribution(fv.build_workbench(model(), task, settings)))

    def attribute():
        return fv.indirect_effects(model(), wb.prompts, wb.stats.mean_heads, metric=args.metric, method=args.method)

    at, hit = cached(files, at_key, attribute) if args.method == "fast" else (attribute(), False)
    return _attribution_json(spec, task, settings, wb, at, t0, from_cache=hit)


def _attribution_json(spec: ModelSpec, task, settings, wb, at, t0: float, from_cache: bool) -> dict:
    """The attribution's JSON from a workbench and an attribution (objects or records alike)."""
    from core.stats import Accuracy

    return {
        "model": spec.model_id,
        "task": task.name,
        "settings": settings.to_dict(),
        "mean_prompts": list(wb.prompts.clean),
        "clean_prompts": list(wb.prompts.clean),
        "corrupted_prompts": list(wb.prompts.corrupted),
        "targets": list(wb.prompts.targets),
        "metric": at.metric,
        "method": at.method,
        "icl_accuracy": wb.stats.icl_accuracy,
        "icl_accuracy_ci": Accuracy.of(wb.stats.icl_accuracy, wb.stats.n_prompts).to_json(),
        "cie": at.cie.tolist(),
        "top_heads": [list(h) for h in top_heads(at.cie, 20)],
        "seconds": time.perf_counter() - t0,
        "attribution_seconds": at.seconds,
        "from_cache": from_cache,
    }


def cmd_fv(args: argparse.Namespace) -> dict:
    from core import checks
    from core.result_files import MISSING, ResultFiles, cached, without_attribution

    task = task_of(args)
    save = save_target(args) if args.save_path else None
    # everything that needs no model is checked before the (slow) load and attribution
    explicit = fv_heads = None
    if args.head_list is not None:
        from core.fv import parse_head_list

        explicit = checks.check_heads(None, parse_head_list(args.head_list))  # at least one
    layer: int | str = args.layer if args.layer == "auto" else int_arg(args.layer, "--layer")
    checks.check_coeff(args.coeff)
    settings, spec = settings_of(args), spec_of(args)
    t0 = time.perf_counter()
    files = ResultFiles()
    wb_key, at_key = workbench_key(spec, task, settings), attribution_key(spec, task, settings, "prob")

    def out(report, from_cache: bool) -> dict:
        return {
            "model": spec.model_id,
            "task": task.name,
            **report.to_json(),
            "seconds": time.perf_counter() - t0,
            "from_cache": from_cache,
        }

    # a stored result was computed from valid heads and layer, so it needs no model to check them
    if save is None:
        at = files.load(at_key, classes=False)  # a record: core.attribution would import nnsight
        if at is not MISSING:
            fv_heads = explicit if explicit is not None else top_heads(at.cie, args.heads)
            report = files.load(fv_key(spec, task, settings, "prob", fv_heads, layer, args.n_eval, args.coeff))
            if report is not MISSING:
                return out(report, True)
    from core import fv

    lm = model_of(args)
    if explicit is not None:
        explicit = checks.check_heads(lm, explicit)
    else:
        checks.check_n_heads(args.heads, lm)
    if layer != "auto":
        layer = checks.check_layer(layer, lm.arch.n_layers)
    wb, _ = cached(files, wb_key, lambda: without_attribution(fv.build_workbench(lm, task, settings)))
    at, _ = cached(files, at_key, lambda: fv.indirect_effects(lm, wb.prompts, wb.stats.mean_heads, metric="prob"))
    wb = dataclasses.replace(wb, attribution=at)
    heads = explicit if explicit is not None else at.top_heads(args.heads)
    key = fv_key(spec, task, settings, "prob", heads, layer, args.n_eval, args.coeff)
    report, hit = cached(
        files, key, lambda: fv.evaluate(lm, wb, list(heads), layer=layer, n_eval=args.n_eval, coeff=args.coeff)
    )
    result = out(report, hit)
    if save is not None:
        from core.vectors import save_file

        path, name = save
        vec = fv.make_vector(lm, wb, heads, report.layer, name=name)
        try:
            save_file(vec, path)
        except OSError as exc:
            raise file_error("--save", args.save_path, exc) from None
        result["saved"] = str(path)
    return result


def compare_tasks_of(args: argparse.Namespace) -> list[Task]:
    """The tasks of ``compare``: ``--tasks`` (built-in names), then ``--task-files``, checked
    (2 to the limit, distinct names). Read by the command and again by its ``--script``."""
    from core import checks
    from core.tasks import load_builtin, load_task_file

    names = [n.strip() for n in (args.tasks or "").split(",") if n.strip()]
    files = [f.strip() for f in (args.task_files or "").split(",") if f.strip()]
    tasks = [load_builtin(n) for n in names] + [load_task_file(f) for f in files]
    checks.check_task_names([t.name for t in tasks])
    return tasks


def cmd_compare(args: argparse.Namespace) -> dict:
    from core.compare import compare_tasks

    tasks = compare_tasks_of(args)  # every task is read and checked before the (slow) load
    layer: int | str = args.layer if args.layer == "auto" else int_arg(args.layer, "--layer")
    lm = model_of(args)
    result = compare_tasks(
        lm, tasks, settings_of(args), top_k=args.top_k, layer=layer, n_eval=args.n_eval, metric=args.metric
    )
    return {"model": lm.model_id, **result.to_json()}


def cmd_heads(args: argparse.Namespace) -> dict:
    from core import checks, fv, induction

    task = task_of(args)
    lm = model_of(args)
    checks.check_n_heads(args.n_max, lm)
    settings = settings_of(args)
    t0 = time.perf_counter()
    prompts = induction.ablation_prompts(task, settings, args.n_eval)  # checked before the work
    wb = fv.build_workbench(lm, task, settings)
    at = fv.run_attribution(lm, wb, metric=args.metric)
    scores = induction.induction_scores(lm, seed=settings.seed)
    result = induction.compare_heads(lm, prompts, wb.stats.mean_heads, at, scores, n_max=args.n_max)
    return {
        "model": lm.model_id,
        "task": task.name,
        "settings": wb.settings.to_dict(),
        **result.to_json(),
        "seconds": time.perf_counter() - t0,
    }


def cmd_pairs(args: argparse.Namespace) -> dict:
    from core.llm_pairs import Endpoint, write_pairs

    # the endpoint comes from OPENAI_BASE_URL, OPENAI_API_KEY, FV_STUDIO_PAIRS_MODEL; the key is never printed
    return write_pairs(args.describe, args.n, Endpoint.read()).to_json()


def cmd_report(args: argparse.Namespace) -> dict:
    from core import checks
    from core.report import ReportOptions, build_report

    task = task_of(args)
    settings = settings_of(args)
    targets = {"--out": args.html_path, "--json": args.json_path}
    if args.html_path and args.json_path and Path(args.html_path).resolve() == Path(args.json_path).resolve():
        raise UserInputError("--out and --json would write the same file.")
    for flag, path in targets.items():  # before the model loads, not after the work is done
        if path:
            try:
                check_writable(path)
            except OSError as exc:
                raise file_error(flag, path, exc) from None
    if args.prompt is not None:
        checks.check_text(args.prompt, "generation prompt")
    checks.check_max_new_tokens(args.max_new_tokens)
    lm = model_of(args)
    options = ReportOptions(
        top_k=checks.check_n_heads(args.heads, lm),
        n_eval=args.n_eval,
        max_new_tokens=args.max_new_tokens,
        prompt=args.prompt,
    )
    report = build_report(lm, task, settings, options)
    data = report.to_json()
    for flag, path in targets.items():
        if not path:
            continue
        if flag == "--out":
            from core.report_html import render

            payload = render(report)
        else:
            payload = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        try:
            write_atomic(path, payload.encode("utf-8"))
        except OSError as exc:
            raise file_error(flag, path, exc) from None
    if args.json_path:  # the whole report is in the file: stdout gets the verdict
        return {"html": args.html_path, "json": args.json_path, "verdict": data["verdict"], "seconds": data["seconds"]}
    return data
