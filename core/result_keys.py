"""The keys results are stored under (:mod:`core.result_files` on disk, the dashboard's store in
memory): one function per kind of result, used by the pages (``dashboard/compute.py``), the CLI and
``python -m core warm``, so each answers the others' requests. A key is a tuple of the kind's
name, the model spec, the task, the prompt settings and the parameters that change the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.models import ModelSpec
from core.prompts import PromptSettings
from core.tasks import Task


def workbench_key(spec: ModelSpec, task: Task, settings: PromptSettings) -> tuple:
    return ("workbench", spec, task, settings)


def attribution_key(spec: ModelSpec, task: Task, settings: PromptSettings, metric: str) -> tuple:
    return ("attribution", spec, task, settings, metric)


def prediction_key(spec: ModelSpec, task: Task, settings: PromptSettings) -> tuple:
    return ("prediction", spec, task, settings)


def fv_key(
    spec: ModelSpec,
    task: Task,
    settings: PromptSettings,
    metric: str,
    heads: Sequence[tuple[int, int]],
    layer: Any,
    n_eval: int,
    coeff: float,
) -> tuple:
    return ("fv", spec, task, settings, metric, tuple((int(l), int(h)) for l, h in heads), layer, n_eval, float(coeff))


def hvector_key(spec: ModelSpec, task: Task, settings: PromptSettings, n_eval: int) -> tuple:
    return ("hvector", spec, task, settings, n_eval)
