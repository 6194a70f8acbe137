"""The disk tier of results: computed views survive a restart, shared by the dashboard and the CLI.

One file per result in ``<cache>/results`` (``FV_STUDIO_RESULTS``, default the ``results``
folder beside the default model's copy in ``FV_STUDIO_CACHE``), named by a hash of its key.

The key is the dashboard's own tuple (``("attribution", spec, task, settings, metric)``...)
with the :class:`core.models.ModelSpec` replaced by the model's *identity* (:func:`model_identity`:
a hash of the weights files for a local model or the default model's copy, hub id + the
cached revision's commit for a hub model, the NDIF id for a remote one; plus dtype and
device), and a *code version* (:func:`code_version`): a hash of every source file of the
``core`` package and the versions of torch, transformers and nnsight. A hash rather than a
constant someone must remember to bump: any change of the code that computes results makes
every stored result unreachable, so a stale one is never served (the cost: warming again
after an upgrade).

A file is safetensors: the tensors, and in its metadata the JSON of the rest
(:mod:`core.result_codec`) and the whole key, compared on reading (a hash collision or a file
copied from elsewhere is a miss). Writes are atomic (:mod:`core.files`); the folder is bounded
by :data:`core.limits.MAX_RESULT_FILES_MB`, least recently used first. A corrupt, truncated or
foreign file is skipped with a warning, never raised. Nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import struct
import threading
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from core import limits
from core.files import write_atomic
from core.models import DEFAULT_MODEL, ModelSpec, cache_dir, default_model_dir
from core.result_codec import ForeignResult, decode, encode

FORMAT = "fv-studio-result/1"
SUFFIX = ".safetensors"
MISSING: Any = object()  # a miss (None is a valid result)


class ResultFileWarning(UserWarning):
    """A result file was skipped or could not be written."""


def results_dir() -> Path:
    return Path(os.environ.get("FV_STUDIO_RESULTS", cache_dir() / "results"))


@lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 of every ``core/**/*.py`` (path and bytes) and the versions of the numeric stack."""
    from importlib.metadata import PackageNotFoundError, version

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    for package in ("torch", "transformers", "nnsight"):
        try:
            h.update(f"{package}=={version(package)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{package} absent\0".encode())
    return h.hexdigest()[:20]


# ---- the model's identity --------------------------------------------------------------
_hash_lock = threading.Lock()
_file_hashes: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> sha256


def _file_hash(path: Path) -> str:
    """sha256 of a file, remembered per (path, mtime, size) in memory and in the results
    folder, so a 540 MB weights file is read once, not on every request."""
    st = path.stat()
    mark = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _hash_lock:
        if mark in _file_hashes:
            return _file_hashes[mark]
        index = results_dir() / "file_hashes.json"
        known = _read_index(index)
        entry = known.get(mark[0])
        if entry and entry[:2] == [mark[1], mark[2]]:
            digest = entry[2]
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            digest = h.hexdigest()
            known[mark[0]] = [mark[1], mark[2], digest]
            known = dict(list(known.items())[-64:])  # bounded: the latest 64 files
            try:
                index.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(index, json.dumps(known).encode())
            except OSError:
                pass  # only a speed-up; the hash stays in memory
        _file_hashes[mark] = digest
        return digest


def _read_index(index: Path) -> dict:
    try:
        data = json.loads(index.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# the files of a model folder that decide its results (weights, config, tokenizer)
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".gguf", ".tiktoken")


def _folder_hash(folder: Path) -> str | None:
    """sha256 over a model folder's files; None for a folder that holds no model (no
    ``config.json``) or that cannot be read: such a model gets no disk tier."""
    if not (folder / "config.json").is_file():
        return None
    h = hashlib.sha256()
    try:
        names = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        for path in names:
            if path.suffix in MODEL_FILE_SUFFIXES:
                h.update(path.name.encode() + b"\0" + _file_hash(path).encode() + b"\0")
    except OSError:
        return None
    return h.hexdigest()


def _hub_revision(model_id: str) -> str | None:
    """The commit of the Hugging Face cache's ``main`` for ``model_id`` (no network), or None."""
    hub = (
        os.environ.get("HF_HUB_CACHE")
        or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
    )
    ref = Path(hub) / f"models--{model_id.replace('/', '--')}" / "refs" / "main"
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def model_identity(spec: ModelSpec) -> str | None:
    """What the results of ``spec`` depend on, without loading it; None when it cannot be told
    (the default model's copy not written yet, a hub model not in the cache): no disk tier then."""
    model_id = spec.model_id.strip()
    if spec.remote:
        weights = f"ndif:{model_id}"
    elif model_id == DEFAULT_MODEL:
        copy = default_model_dir()
        digest = _folder_hash(copy) if (copy / "model.safetensors").is_file() else None
        if digest is None:
            return None
        weights = f"default:{digest}"
    elif Path(model_id).is_dir():
        digest = _folder_hash(Path(model_id))
        if digest is None:
            return None
        weights = f"folder:{digest}"
    else:
        revision = _hub_revision(model_id)
        if revision is None:
            return None
        weights = f"hub:{model_id}@{revision}"
    return f"{weights}|{spec.dtype}|{spec.device}"


# ---- keys -------------------------------------------------------------------------------
def canonical_key(key: tuple) -> str | None:
    """The one text a key stands for: every ModelSpec replaced by its identity, JSON with sorted
    keys, and the code version. None when a model's identity is unknown or the key holds
    something the format cannot carry (a tensor, a function): such a result stays in memory."""
    if not any(isinstance(part, ModelSpec) for part in key):
        return None
    parts = []
    for part in key:
        if isinstance(part, ModelSpec):
            try:
                part = model_identity(part)
            except (OSError, ValueError):  # an unreadable model: computed, and kept in memory only
                return None
            if part is None:
                return None
        parts.append(part)
    try:
        tree, tensors = encode(tuple(parts))
    except TypeError:
        return None
    if tensors:
        return None
    return json.dumps({"code": code_version(), "key": tree}, sort_keys=True, ensure_ascii=True)


# ---- the folder -------------------------------------------------------------------------
class ResultFiles:
    """The results folder: :meth:`load`, :meth:`save`, :meth:`clear`, bounded by size."""

    def __init__(self, folder: str | Path | None = None, max_bytes: int | None = None):
        self._folder = Path(folder) if folder is not None else None  # None: results_dir() at each use
        self.max_bytes = max_bytes if max_bytes is not None else limits.MAX_RESULT_FILES_MB * 1024 * 1024
        self.lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self._folder if self._folder is not None else results_dir()

    def path_for(self, canonical: str) -> Path:
        return self.folder / (hashlib.sha256(canonical.encode()).hexdigest()[:40] + SUFFIX)

    def load(self, key: tuple, classes: bool = True) -> Any:
        """The stored result for ``key``, or :data:`MISSING`. Never raises for a bad file."""
        canonical = canonical_key(key)
        if canonical is None:
            return MISSING
        path = self.path_for(canonical)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return MISSING
        except OSError as exc:
            _warn(path, f"cannot be read ({exc.strerror or exc})")
            return MISSING
        try:
            value = _parse(data, canonical, classes)
        except (ForeignResult, ValueError, KeyError, TypeError, struct.error) as exc:
            _warn(path, str(exc) or type(exc).__name__)
            return MISSING
        with contextlib.suppress(OSError):
            os.utime(path)  # least recently *used* goes first
        return value

    def save(self, key: tuple, value: Any) -> bool:
        """Store ``value`` under ``key``; False (with a warning where it is a failure) if not stored."""
        canonical = canonical_key(key)
        if canonical is None:
            return False
        try:
            tree, tensors = encode(value)
        except TypeError as exc:
            warnings.warn(f"result {key[0]!r} not stored on disk: {exc}", ResultFileWarning, stacklevel=2)
            return False
        from safetensors.torch import save

        path = self.path_for(canonical)
        try:
            meta = {"format": FORMAT, "key": canonical, "value": json.dumps(tree, ensure_ascii=True)}
            data = save(tensors, metadata=meta)
        except Exception as exc:  # a tensor safetensors cannot write: the result stays in memory
            warnings.warn(f"result {key[0]!r} not stored on disk: {exc}", ResultFileWarning, stacklevel=2)
            return False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
            self._evict(keep=path)
        except OSError as exc:
            _warn(path, f"cannot be written ({exc.strerror or exc})")
            return False
        return True

    def files(self) -> list[Path]:
        try:
            return [p for p in self.folder.iterdir() if p.suffix == SUFFIX and not p.name.startswith(".")]
        except OSError:
            return []

    def size(self) -> int:
        return sum(_size(p) for p in self.files())

    def clear(self) -> int:
        """Delete every stored result; how many were deleted."""
        n = 0
        for path in self.files():
            try:
                path.unlink()
                n += 1
            except OSError:
                pass
        return n

    def _evict(self, keep: Path) -> None:
        with self.lock:
            files = sorted(self.files(), key=_mtime)
            total = sum(_size(p) for p in files)
            for path in files:
                if total <= self.max_bytes:
                    break
                if path == keep:  # the newest result always stays
                    continue
                total -= _size(path)
                with contextlib.suppress(OSError):
                    path.unlink()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _warn(path: Path, why: str) -> None:
    warnings.warn(f"result file {path.name} skipped: {why}", ResultFileWarning, stacklevel=3)


def _parse(data: bytes, canonical: str, classes: bool) -> Any:
    """The value of a result file; ForeignResult/ValueError for anything else."""
    if len(data) < 8:
        raise ForeignResult("truncated (no header)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ForeignResult("truncated (header longer than the file)")
    header = json.loads(data[8 : 8 + n])  # foreign bytes (a Python object dump...) fail here
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ForeignResult("not an FV Studio result file")
    if meta.get("key") != canonical:
        raise ForeignResult("another result's key (hash collision or a copied file)")
    from safetensors.torch import load

    try:
        tensors = load(data)
    except Exception as exc:  # safetensors raises its own error types for a damaged body
        raise ForeignResult(f"damaged tensors ({type(exc).__name__})") from None
    return decode(json.loads(meta["value"]), tensors, classes=classes)


def cached(files: ResultFiles | None, key: tuple, make: Callable[[], Any]) -> tuple[Any, bool]:
    """``(value, from_cache)``: the stored result for ``key``, else ``make()`` stored."""
    if files is not None:
        value = files.load(key)
        if value is not MISSING:
            return value, True
    value = make()
    if files is not None:
        files.save(key, value)
    return value, False


def without_attribution(workbench: Any) -> Any:
    """A Workbench as the dashboard stores it: the attribution is a result of its own."""
    return dataclasses.replace(workbench, attribution=None)
