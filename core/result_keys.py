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


# ---- the guided lesson's own results (core.course: what `warm` computes for them) --------------


def anatomy_key(spec: ModelSpec, prompt: str, layer: int) -> tuple:
    return ("anatomy", spec, prompt, layer)


def query_effects_key(spec: ModelSpec, task: Task, settings: PromptSettings, layer: int, n: int) -> tuple:
    return ("query_effects", spec, task, settings, layer, n)


def held_out_fv_key(spec: ModelSpec, task: Task, settings: PromptSettings, heads: Sequence, layer: int) -> tuple:
    return ("held_out_fv", spec, task, settings, tuple((int(l), int(h)) for l, h in heads), layer)


def additions_key(spec: ModelSpec, additions: Sequence, prepend_bos: bool) -> tuple:
    return ("additions", spec, tuple(additions), prepend_bos)


def caa_key(spec: ModelSpec, pairs: Sequence[tuple[str, str]]) -> tuple:
    return ("caa", spec, tuple(pairs))


# ---- steering: vectors are keyed by a digest of their values (tensors are not hashable), so two
# vectors with the same name but different values never share a result


def digest(values: Any) -> str:
    """A key for a tensor: sha1 of its float32 bytes plus its shape."""
    import hashlib

    t = values.detach().float().cpu().contiguous()
    return f"{hashlib.sha1(t.numpy().tobytes()).hexdigest()}{tuple(t.shape)}"


def steer_key(
    spec: ModelSpec,
    prompts: Sequence[str],
    vector_digest: str,
    layer: int,
    coeff: float,
    mode: str,
    max_new_tokens: int,
    decoding: Any,
    more: Sequence[tuple[int, Any]] = (),
) -> tuple:
    """core.steer.generate_pair's result; ``more``: ``(layer, values)`` added at further layers,
    keyed by their digests (a key without them is unchanged)."""
    extra = (tuple((l, digest(v)) for l, v in more),) if more else ()
    return ("steer", spec, tuple(prompts), vector_digest, layer, coeff, mode, max_new_tokens, decoding, *extra)
