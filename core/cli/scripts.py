"""``--script FILE`` on the commands that compute: write the runnable nnsight script that
reproduces the command's own result (:mod:`core.scripts`), built from that result (so heads
chosen by top-k, and a layer chosen automatically, are inlined). The file is checked before
the model loads and written atomically."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.cli.common import file_error, settings_of, task_of
from core.errors import UserInputError
from core.files import check_writable
from core.models import ModelSpec

if TYPE_CHECKING:
    from core.prompts import PromptSettings
    from core.tasks import Task

SCRIPT_COMMANDS = ("predict", "attribution", "fv", "steer", "heads", "compare", "report")


def add_script_args(parser: argparse.ArgumentParser, command: str) -> None:
    """The ``--script`` flag (and, for attribution, the layers the script patches)."""
    # dest is not "script": keep clear of names nnsight or argparse may put on a namespace
    parser.add_argument("--script", dest="script_path", help="also write a runnable nnsight script of this result")
    if command == "attribution":
        parser.add_argument(
            "--script-layers",
            help="layers the script patches, e.g. 0,1 (default all: one forward per head, slow on big models)",
        )


def script_layers(args: argparse.Namespace) -> list[int] | None:
    text = getattr(args, "script_layers", None)
    if not text:
        return None
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UserInputError(f"--script-layers must be layer numbers separated by commas (got {text!r}).") from None


def check_script_arg(args: argparse.Namespace) -> None:
    """Before the model loads: the script's file can be written, its options make sense."""
    path = getattr(args, "script_path", None)
    if not path:
        return
    script_layers(args)
    try:
        check_writable(path)
    except OSError as exc:
        raise file_error("--script", path, exc) from None


def script_for(args: argparse.Namespace, result: dict) -> str:
    """The script of ``result``, the JSON a command returned for ``args`` (no model work)."""
    spec = ModelSpec(model_id=args.model, dtype=args.dtype, device=args.device)
    if args.command == "steer":  # core.cli.steering builds it
        from core.cli.steering import steer_script_for

        return steer_script_for(args, result)
    if args.command == "predict":
        from core.scripts.predict import predict_script

        return predict_script(spec, result["task"], result["prompts"], result["zero_shot_prompts"], result["targets"])
    if args.command == "compare":  # several tasks, read again as the command read them
        from core.cli.analysis import compare_tasks_of
        from core.scripts.compare import compare_script

        return compare_script(
            spec,
            compare_tasks_of(args),
            settings_of(args),
            [int(layer) for layer in result["layers"]],
            result["layer_choice"],
            result["metric"],
            int(result["top_k"]),
            args.n_eval,
        )
    task, settings = task_of(args), settings_of(args)
    if args.command == "heads":
        from core.scripts.heads import heads_script

        induction = result["induction_settings"]
        return heads_script(
            spec,
            task,
            settings,
            result["metric"],
            args.n_eval,
            len(result["ablation"]["n"]) - 1,  # n_max
            induction["n_seqs"],
            induction["seq_len"],
            induction["seed"],
        )
    if args.command == "report":
        return report_script_for(args, task, settings, result)
    if args.command == "attribution":
        from core.scripts.attribution import attribution_script

        layers = script_layers(args)
        n_layers = len(result["cie"])
        if layers is not None and any(not 0 <= layer < n_layers for layer in layers):
            raise UserInputError(f"--script-layers must be between 0 and {n_layers - 1} (got {args.script_layers}).")
        return attribution_script(spec, task, settings, result["metric"], layers)
    if args.command == "fv":
        from core.scripts.function_vector import fv_script

        heads = [(int(l), int(h)) for l, h in result["heads"]]
        return fv_script(
            spec,
            task,
            settings,
            heads,
            int(result["layer"]),
            args.n_eval,
            float(result["coeff"]),
            result["layer_choice"],
            curve_heads=[(int(l), int(h)) for l, h in result["curve_heads"]],
        )
    raise UserInputError(f"--script is not available for {args.command}.")


def report_script_for(args: argparse.Namespace, task: Task, settings: PromptSettings, result: dict) -> str:
    """The report's script: the numbers are those of the report's JSON, which is in the
    ``--json`` file when one was given (stdout then carries the verdict only)."""
    import json
    from pathlib import Path

    from core.report import ReportOptions
    from core.scripts.report import report_script

    data = result if "cie" in result else json.loads(Path(args.json_path).read_text(encoding="utf-8"))
    generation = data["generation"]
    return report_script(
        ModelSpec(model_id=args.model, dtype=args.dtype, device=args.device),
        task,
        settings,
        ReportOptions(**data["options"]),
        int(data["layer"]),
        data["layer_choice"],
        generation["prompt"],
        generation["query"],
        generation["target"],
    )


def write_script_for(args: argparse.Namespace, result: dict) -> None:
    """Write the script of ``result`` when ``--script`` was given; the JSON says where."""
    path = getattr(args, "script_path", None)
    if not path:
        return
    from core.scripts.common import write_script

    source = script_for(args, result)
    try:
        write_script(path, source)
    except OSError as exc:
        raise file_error("--script", path, exc) from None
    result["script"] = str(path)
