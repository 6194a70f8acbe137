"""Results as JSON plus named tensors, and back: the format of the result files on disk.

A result (a :class:`core.fv.Workbench`, :class:`core.fv.FVReport`, a tuple of them...) is a tree of
dataclasses, tuples, lists, dicts, strings, numbers and tensors. :func:`encode` walks it once:
every tensor is moved to a flat ``{name: tensor}`` dict (written as safetensors) and replaced by
its name, every container becomes a tagged JSON node (``{"$": "tuple", "v": [...]}``), and every
dataclass a node naming its type. :func:`decode` rebuilds the tree.

Only the dataclasses in :data:`REGISTRY` are rebuilt: a node naming any other type is refused
(:class:`ForeignResult`), so a file can never make the loader import or call anything else.
Nothing is unpickled or evaluated: JSON and safetensors carry data only.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# "module:QualName" of every dataclass a stored result (or a key) may hold. Adding a result
# type to the store means adding it here; the test round-trips every one of them.
REGISTRY: tuple[str, ...] = (
    "core.tasks:Pair",
    "core.tasks:Task",
    "core.prompts:PromptSettings",
    "core.prompts:PromptSet",
    "core.stats:Accuracy",
    "core.attribution:CleanStats",
    "core.attribution:Attribution",
    "core.fv:Workbench",
    "core.results:FVReport",
    "core.results:HVectorSweep",
    "core.vectors:Vector",
    "core.predict:Prediction",
    "core.induction:InductionScores",
    "core.induction:AblationCurves",
    "core.induction:HeadsComparison",
    "core.compare:Comparison",
    "core.report:ReportOptions",
    "core.report:Generation",
    "core.report:TaskReport",
    "core.steer_diff:NextTokenChange",
    "core.steer:PairResult",
    "core.steer:Decoding",
    "core.sweep:SweepResult",
    "core.anatomy:Anatomy",
    "core.query_effects:QueryEffect",
    "core.additions:Addition",
    "core.additions:AdditionSum",
)
_ALLOWED = frozenset(REGISTRY)


class ForeignResult(ValueError):
    """The JSON names a type outside :data:`REGISTRY`, or is not a tree :func:`encode` writes."""


class Record:
    """A dataclass node decoded without importing its class (``classes=False``): its fields
    as attributes and its type name in ``type_name``. For readers that must stay light (the
    CLI answering from the disk tier without importing nnsight)."""

    def __init__(self, type_name: str, fields: dict[str, Any]):
        self.type_name = type_name
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"Record({self.type_name})"


def type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def encode(value: Any, tensors: dict[str, torch.Tensor] | None = None) -> tuple[Any, dict[str, torch.Tensor]]:
    """``(json_tree, tensors)`` for ``value``. Raises ``TypeError`` for anything outside the
    format (an unregistered dataclass, a set, a model...): such a result is not stored."""
    tensors = {} if tensors is None else tensors
    return _enc(value, tensors), tensors


def _enc(value: Any, tensors: dict[str, Any]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list):
        return {"$": "list", "v": [_enc(v, tensors) for v in value]}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"$": "tuple", "v": [_enc(v, tensors) for v in value]}
    if isinstance(value, dict):
        return {"$": "dict", "v": [[_enc(k, tensors), _enc(v, tensors)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = type_name(type(value))
        if name not in _ALLOWED:
            raise TypeError(f"{name} is not a registered result type (core.result_codec.REGISTRY)")
        fields = {f.name: _enc(getattr(value, f.name), tensors) for f in dataclasses.fields(value)}
        return {"$": "dc", "type": name, "v": fields}
    import torch

    if isinstance(value, torch.Tensor):
        name = f"t{len(tensors)}"
        # a copy of its own: safetensors refuses tensors that share storage
        tensors[name] = value.detach().to("cpu").contiguous().clone()
        return {"$": "tensor", "v": name}
    raise TypeError(f"cannot store a {type(value).__name__} in a result file")


def decode(tree: Any, tensors: dict[str, torch.Tensor], classes: bool = True) -> Any:
    """The value :func:`encode` was given. ``classes=False`` gives :class:`Record` objects for
    dataclasses instead of importing their modules. Raises :class:`ForeignResult`."""
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if not isinstance(tree, dict) or "$" not in tree:
        raise ForeignResult(f"unexpected JSON node {str(tree)[:60]!r}")
    tag, v = tree["$"], tree.get("v")
    if tag == "list":
        return [decode(x, tensors, classes) for x in _items(v)]
    if tag == "tuple":
        return tuple(decode(x, tensors, classes) for x in _items(v))
    if tag == "dict":
        return {_hashable(decode(k, tensors, classes)): decode(x, tensors, classes) for k, x in _pairs(v)}
    if tag == "tensor":
        if not isinstance(v, str) or v not in tensors:
            raise ForeignResult(f"tensor {v!r} is missing from the file")
        return tensors[v]
    if tag == "dc":
        return _dataclass(tree.get("type"), v, tensors, classes)
    raise ForeignResult(f"unknown node type {tag!r}")


def _items(v: Any) -> list:
    if not isinstance(v, list):
        raise ForeignResult("a container node without a list")
    return v


def _pairs(v: Any) -> list:
    items = _items(v)
    if not all(isinstance(p, list) and len(p) == 2 for p in items):
        raise ForeignResult("a dict node whose items are not pairs")
    return items


def _hashable(key: Any) -> Any:
    try:
        hash(key)
    except TypeError:
        raise ForeignResult("a dict key that is not hashable") from None
    return key


def _dataclass(name: Any, v: Any, tensors: dict[str, Any], classes: bool) -> Any:
    if name not in _ALLOWED:  # the allowlist: nothing else is ever imported or called
        raise ForeignResult(f"type {str(name)[:80]!r} is not a result type")
    if not isinstance(v, dict):
        raise ForeignResult(f"{name} without fields")
    values = {str(k): decode(x, tensors, classes) for k, x in v.items()}
    if not classes:
        return Record(name, values)
    module, qualname = name.split(":")
    cls = getattr(importlib.import_module(module), qualname)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if set(values) != set(fields):  # written by another version of the class
        raise ForeignResult(f"{name} fields do not match ({sorted(set(values) ^ set(fields))})")
    obj = cls(**{k: x for k, x in values.items() if fields[k].init})
    for k, x in values.items():
        if not fields[k].init:
            object.__setattr__(obj, k, x)
    return obj
