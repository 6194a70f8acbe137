"""The boundary between pages and core: cached model and results, progress bars with Cancel,
the place in the model's queue, and errors turned into messages.

Caching lives only here. The model is a shared resource (one per spec); results live in the
shared :class:`dashboard.store.ResultStore`, keyed per (model spec, task, prompt settings,
seed, parameters), so moving between pages never recomputes them and a stored result never
waits for the model.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import streamlit as st

from core import fv as fv_mod
from core import limits, turns
from core.errors import Cancelled, UserInputError
from core.inference import no_progress
from core.models import LoadedModel, ModelSpec, load_model
from core.prompts import PromptSettings
from core.server_config import VARIABLES as server_config_vars
from core.server_config import ServerConfig
from core.tasks import Task
from dashboard import store as store_mod
from dashboard.store import ResultStore

if TYPE_CHECKING:
    from core.sweep import SweepResult


@st.cache_resource(max_entries=2, show_spinner=False)
def _model(spec: ModelSpec) -> LoadedModel:
    return load_model(spec)


def server_config() -> ServerConfig:
    """The operator's settings (core.server_config), from the environment or Streamlit secrets."""
    return ServerConfig.read(secrets={name: _secret(name) for name in server_config_vars})


def get_model(spec: ModelSpec) -> LoadedModel:
    """The shared model for ``spec``, if this server allows it (else UserInputError)."""
    server_config().check(spec)
    if spec.remote and not os.environ.get("NDIF_API_KEY"):
        key = _secret("NDIF_API_KEY")
        if key:
            os.environ["NDIF_API_KEY"] = key
    with st.spinner(f"Loading {spec.model_id} (the first run dequantizes the default model, about 30 s)..."):
        return _model(spec)


def _secret(name: str) -> str | None:
    try:
        return st.secrets.get(name)  # type: ignore[no-any-return]
    except Exception:  # no secrets file
        return None


CANCELLED = "_cancelled"  # session key: label of the computation cancelled by the last click
CANCELLED_NOW = "_cancelled_now"  # the same, for the script run that follows the click only


def begin_script_run() -> None:
    """Called first in every script run (app.py): a cancel is reported in the run right after it."""
    st.session_state[CANCELLED_NOW] = st.session_state.pop(CANCELLED, None)
    st.session_state["_cancel_keys"] = []


def _cancel_key(label: str) -> str:
    used = st.session_state.setdefault("_cancel_keys", [])
    key, n = f"_cancel_{label}", 1
    while key in used:
        n += 1
        key = f"_cancel_{label}_{n}"
    used.append(key)
    return key


class Progress:
    """A Streamlit progress bar as a core progress callback, with a Cancel button.

    Both are drawn on the script thread when the computation starts (Streamlit cannot draw a
    widget from nnsight's worker thread). Clicking Cancel asks Streamlit for a rerun;
    Streamlit ends this run at the next progress update on the script thread, and a report
    from nnsight's worker thread raises core.errors.Cancelled when it sees the request. The
    next run says what was cancelled.
    """

    def __init__(self, label: str):
        self.label = label
        self.holder = st.empty()
        with self.holder.container():
            self.bar = st.progress(0.0, text=label)
            st.button("Cancel", key=_cancel_key(label), icon=":material/cancel:", on_click=_mark_cancelled, args=(label,))

        self.fraction = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        self.fraction = min(max(fraction, 0.0), 1.0)
        self.bar.progress(self.fraction, text=f"{self.label} ({message})")

    def queued(self, ahead: int, waited: float) -> None:
        """core.turns' wait report: this computation waits for its turn on the model."""
        self.bar.progress(
            self.fraction,
            text=f"{self.label}: Waiting for the model: another user's computation is running; "
            f"{ahead} ahead of you in the queue ({waited:.0f} s)...",
        )

    def awaiting_result(self, waited: float) -> None:
        """The store's wait report: another user is computing this very result."""
        self.bar.progress(
            self.fraction,
            text=f"{self.label}: another user is computing this same result; it shows here when ready ({waited:.0f} s)...",
        )

    def done(self) -> None:
        self.holder.empty()


def _mark_cancelled(label: str) -> None:
    st.session_state[CANCELLED] = label


def run(label: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a computation with a progress bar and a Cancel button.

    A stored result comes back at once. A computation takes turns on the model inside core
    (:mod:`core.turns`); while it waits in the queue, or for another user computing the same
    result, the bar says so, and Cancel leaves the queue. Returns None after showing an error,
    or when this computation was cancelled by the click that started this script run (it then
    offers to run it again).
    """
    if st.session_state.get(CANCELLED_NOW) == label:
        st.warning(f"Cancelled: {label}. Nothing from it was kept.")
        st.button("Run it again", key=f"_again_{label}", icon=":material/replay:")
        return None
    bar = Progress(label)
    try:
        with turns.waiting_display(bar.queued), store_mod.waiting_display(bar.awaiting_result):
            return fn(*args, _progress=bar, **kwargs)
    except UserInputError as exc:
        st.error(str(exc))
        return None
    except Cancelled:
        # raised on nnsight's worker thread; the rerun the click asked for follows at once
        return None
    finally:
        bar.done()


# ---- cached results --------------------------------------------------------------------
# One ResultStore (dashboard.store) shared by all sessions, keyed on (what, model spec, task,
# settings, params).


@st.cache_resource
def store() -> ResultStore:
    return ResultStore(limits.MAX_CACHED_RESULTS, limits.MAX_CACHE_MB * 1024 * 1024)


def workbench(spec: ModelSpec, task: Task, settings: PromptSettings, _lm: LoadedModel, _progress=None):
    return store().get(
        ("workbench", spec, task, settings),
        lambda: fv_mod.build_workbench(_lm, task, settings, progress=_progress or no_progress),
    )


def attribution(spec: ModelSpec, task: Task, settings: PromptSettings, metric: str, _lm: LoadedModel, _progress=None):
    def make():
        wb = workbench(spec, task, settings, _lm)
        return fv_mod.indirect_effects(_lm, wb.prompts, wb.stats.mean_heads, metric=metric, progress=_progress or no_progress)

    return store().get(("attribution", spec, task, settings, metric), make)


def prediction(spec: ModelSpec, task: Task, settings: PromptSettings, _lm: LoadedModel, _progress=None):
    from core.predict import predict

    return store().get(("prediction", spec, task, settings), lambda: predict(_lm, task, settings, progress=_progress or no_progress))


def hvector_sweep(spec: ModelSpec, task: Task, settings: PromptSettings, n_eval: int, _lm: LoadedModel, _progress=None):
    from core.prompts import build_prompts, split_task

    def make():
        wb = workbench(spec, task, settings, _lm)
        splits = split_task(task, settings.seed)
        test = build_prompts(splits.test, splits.train, settings, n_prompts=min(n_eval, len(splits.test)))
        layers = [(l, wb.stats.hvector[l]) for l in range(_lm.arch.n_layers)]
        base, by_layer = fv_mod.accuracy_sweep(_lm, test.zero_shot, test.targets, layers, 1.0, progress=_progress or no_progress)
        icl, _ = fv_mod.accuracy_sweep(_lm, test.clean, test.targets, [])
        return {"zero_shot": base, "by_layer": by_layer, "icl": icl, "n_eval": len(test), "overlap": splits.overlap}

    return store().get(("hvector", spec, task, settings, n_eval), make)


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
        return fv_mod.evaluate(_lm, wb, list(heads), layer=layer, n_eval=n_eval, coeff=coeff, progress=_progress or no_progress)

    return store().get(("fv", spec, task, settings, metric, heads, layer, n_eval, coeff), make)


def attention(spec: ModelSpec, prompt: str, layer: int, _lm: LoadedModel, _progress=None):
    from core.attention import attention_pattern

    return store().get(("attention", spec, prompt, layer), lambda: attention_pattern(_lm, prompt, layer))


# ---- steering: Steer, Steering vectors, Vector library ------------------------------------
# Vectors are keyed by a digest of their values (tensors are not hashable), so two vectors
# with the same name but different values never share a cached result.


def _from_any_thread(progress: Callable[[float, str], None] | None) -> Callable[[float, str], None]:
    """A progress callback that also works from nnsight's worker thread.

    The body of a ``with generate(...)`` loop runs on a thread nnsight starts, where Streamlit
    has no script context; the callback attaches this run's context there first. A progress
    bar must never break a computation, so its failures (and a stop or rerun request, which
    the script's own thread handles) are ignored.
    """
    from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException
    from streamlit.runtime.scriptrunner_utils.script_run_context import add_script_run_ctx, get_script_run_ctx

    if progress is None:
        return no_progress
    owner = get_script_run_ctx(suppress_warning=True)

    def call(fraction: float, message: str) -> None:
        if _interrupt_requested(owner):
            raise Cancelled("cancelled from the page")
        try:
            if owner is not None and get_script_run_ctx(suppress_warning=True) is not owner:
                add_script_run_ctx(threading.current_thread(), owner)
            progress(fraction, message)
        except (Exception, ScriptControlException):
            pass

    return call


def _interrupt_requested(ctx: Any) -> bool:
    """Whether the session of ``ctx`` has asked to stop or rerun its script (Cancel, Stop, a click).

    Streamlit acts on such a request only on the script's own thread; a computation on
    nnsight's worker thread asks here. (Reads ScriptRequests' state, which has no public getter.)
    """
    requests = getattr(ctx, "script_requests", None)
    state = getattr(requests, "_state", None)
    return getattr(state, "name", "") in ("STOP", "RERUN")


def digest(values: Any) -> str:
    """A cache key for a tensor: sha1 of its float32 bytes plus its shape."""
    import hashlib

    t = values.detach().float().cpu().contiguous()
    return f"{hashlib.sha1(t.numpy().tobytes()).hexdigest()}{tuple(t.shape)}"


def vectors_for(lm: LoadedModel) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Vectors usable with the loaded model: ``(name -> Vector, name -> "library"|"session", problems)``.

    The library's files for this model, plus vectors made or uploaded in this session (a
    session vector with a library name is the same vector: saving puts it in both). Files
    that fail to load are reported, not raised.
    """
    from core.vectors import Library, default_library_dir

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

    return store().get(("resid_norms", spec, prompts), lambda: steering_vectors.resid_norms(_lm, list(prompts)).tolist())


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
):
    """core.steer.generate_pair, cached on (model, prompts, vector digest, settings, decoding incl. seed)."""
    from core import steer

    def make():
        return steer.generate_pair(
            _lm, list(prompts), values, layer, coeff, mode, max_new_tokens,
            sample=decoding.sample, temperature=decoding.temperature, top_p=decoding.top_p,
            repetition_penalty=decoding.repetition_penalty, n_samples=decoding.n_samples,
            seed=decoding.seed, progress=_from_any_thread(_progress),
        )

    return store().get(("steer", spec, prompts, key, layer, coeff, mode, max_new_tokens, decoding), make)


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
        ("caa", spec, pairs), lambda: steering_vectors.caa_vectors(_lm, list(pairs), progress=_from_any_thread(_progress))
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
            _lm, prompt, vectors, list(coeffs), mode, max_new_tokens,
            target_word=target_word, keywords=list(keywords), progress=_from_any_thread(_progress),
        )

    return store().get(("sweep", spec, prompt, by_layer, coeffs, mode, max_new_tokens, target_word, keywords), make)


def decode_vector(spec: ModelSpec, key: str, values: Any, k: int, _lm: LoadedModel, _progress=None) -> list[tuple[str, float]]:
    """core.fv.decode: the tokens a vector promotes (final norm, then unembedding)."""
    return store().get(("decode", spec, key, k), lambda: fv_mod.decode(_lm, values, k))
