"""``python -m core``: the dashboard's computations from the command line, as JSON.

Bad input prints one line on stderr and exits with status 2; so does a file that cannot be
read or written (``--task-file``, ``--vector``, ``--out``, ``--save``, ``--script``). Files to be written are
checked before the model loads, so a typo in a folder name costs no minutes of computing,
and are written atomically (a reader never sees half of one).
"""

from __future__ import annotations

import argparse
import json
import sys

from core.checks import CORRUPTIONS
from core.cli import analysis, scripts, steering, warm
from core.cli.common import Parser, file_error, finite
from core.errors import UserInputError
from core.files import check_writable, write_atomic
from core.models import DEFAULT_MODEL


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m core", description="FV Studio command line (JSON output)")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, task: bool = True, out: bool = True) -> None:
        p.add_argument("--model", default=DEFAULT_MODEL, help="model id, folder, or the default")
        p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
        p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"])
        p.add_argument("--remote", action="store_true", help="run on NDIF (needs NDIF_API_KEY and the internet)")
        if out:
            p.add_argument("--out", help="write the JSON here instead of stdout")
        if task:
            p.add_argument("--task", help="built-in task name (e.g. antonym)")
            p.add_argument("--task-file", help="JSON, CSV (input,output) or typed lines")
            prompt_args(p)

    def prompt_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--n-shots", type=int, default=10)
        p.add_argument("--n-prompts", type=int, default=20)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument(
            "--corruption",
            default="shuffle",
            choices=list(CORRUPTIONS),
            help="corrupted prompts: demo labels shuffled (the paper) or random outputs of the task",
        )

    common(sub.add_parser("info", help="model facts"), task=False)
    common(sub.add_parser("predict", help="in-context and zero-shot predictions"))
    p = sub.add_parser("attribution", help="causal indirect effect of every head")
    common(p)
    p.add_argument("--metric", default="prob", choices=["prob", "logprob"])
    p.add_argument("--method", default="fast", choices=["fast", "reference"])
    p = sub.add_parser("fv", help="build and evaluate a function vector")
    common(p)
    p.add_argument("--heads", type=int, default=10, help="use the top K heads")
    p.add_argument("--head-list", help="explicit heads, e.g. 20.5,14.1")
    p.add_argument("--layer", default="auto", help="layer to add the vector at, or auto")
    p.add_argument("--n-eval", type=int, default=50)
    p.add_argument("--coeff", type=finite, default=1.0)
    # not dest "save": nnsight puts a .save() method on every object, Namespace included, and
    # argparse leaves a default unset when the namespace already has the attribute
    p.add_argument("--save", dest="save_path", help="save the vector (safetensors) here")
    p = sub.add_parser("compare", help="several tasks: mean head effects, overlaps, FV cosines, transfer")
    common(p, task=False)
    prompt_args(p)
    p.add_argument("--tasks", help="built-in task names, comma-separated (e.g. antonym,present_past)")
    p.add_argument("--task-files", help="task files, comma-separated (JSON, CSV or typed lines)")
    p.add_argument("--top-k", type=int, default=10, help="heads per task (function vector and overlap)")
    p.add_argument("--layer", default="auto", help="layer to add each FV at, or auto (each source's best)")
    p.add_argument("--n-eval", type=int, default=50, help="held-out queries per target task")
    p.add_argument("--metric", default="prob", choices=["prob", "logprob"])
    p = sub.add_parser("heads", help="function-vector heads vs induction heads: scores and ablation curves")
    common(p)
    p.add_argument("--metric", default="prob", choices=["prob", "logprob"])
    p.add_argument("--n-max", type=int, default=10, help="ablate the top 0..N heads of each kind")
    p.add_argument("--n-eval", type=int, default=50, help="held-out in-context prompts the ablation is scored on")
    p = sub.add_parser("pairs", help="task pairs written by a language model (OpenAI-compatible endpoint)")
    p.add_argument("--describe", required=True, help="the task in one line, e.g. 'adjective -> its comparative'")
    p.add_argument("--n", type=int, default=40, help="how many pairs to ask for")
    p.add_argument("--out", help="write the JSON here instead of stdout (--task-file reads it)")
    p = sub.add_parser("report", help="the task report: ICL, heads, function vector, h-vector, steering")
    common(p, out=False)  # --out is the HTML file here
    p.set_defaults(out=None)
    p.add_argument("--out", dest="html_path", help="write the self-contained HTML report here")
    p.add_argument("--json", dest="json_path", help="write the JSON report here (else it goes to stdout)")
    p.add_argument("--heads", type=int, default=10, help="heads in the function vector (top K)")
    p.add_argument("--n-eval", type=int, default=50, help="held-out test queries, at most")
    p.add_argument("--prompt", help="prompt of the steered free generation (default: a held-out query)")
    p.add_argument("--max-new-tokens", type=int, default=30)
    p = sub.add_parser("steer", help="unsteered vs steered generation")
    common(p, task=False)
    p.add_argument("--prompt", required=True)
    p.add_argument("--vector", help="a saved vector file (.safetensors)")
    p.add_argument("--positive")
    p.add_argument("--negative")
    p.add_argument("--layer")
    p.add_argument("--coeff", type=finite, default=1.0)
    p.add_argument("--mode", choices=["last", "prompt"])
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample", action="store_true")
    # the Steer page's sampling settings (core.steer.Decoding)
    p.add_argument("--temperature", type=finite, default=1.0, help="with --sample")
    p.add_argument("--top-p", type=finite, default=1.0, help="with --sample")
    p.add_argument("--repetition-penalty", type=finite, default=1.0, help="1 = none; greedy and sampling")
    p.add_argument("--n-samples", type=int, default=1, help="continuations per column, with --sample")
    # precompute the pages' results into the disk tier (core.cli.warm)
    p = sub.add_parser("warm", help="precompute what the pages show for built-in tasks (the disk tier)")
    common(p, task=False)
    prompt_args(p)
    p.add_argument("--tasks", help="built-in task names, comma-separated (default: all)")
    p.add_argument("--clear", action="store_true", help="delete every stored result instead (nothing computed)")
    # --script FILE on the commands that compute (core.cli.scripts)
    for name in scripts.SCRIPT_COMMANDS:
        scripts.add_script_args(sub.choices[name], name)
    return parser


COMMANDS = {
    "info": analysis.cmd_info,
    "predict": analysis.cmd_predict,
    "attribution": analysis.cmd_attribution,
    "fv": analysis.cmd_fv,
    "compare": analysis.cmd_compare,
    "heads": analysis.cmd_heads,
    "pairs": analysis.cmd_pairs,
    "report": analysis.cmd_report,
    "steer": steering.cmd_steer,
    "warm": warm.cmd_warm,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.out:
            try:
                check_writable(args.out)  # before the model loads, not after the work is done
            except OSError as exc:
                raise file_error("--out", args.out, exc) from None
        scripts.check_script_arg(args)  # --script, checked before the model loads
        result = COMMANDS[args.command](args)
        scripts.write_script_for(args, result)  # the script of this very result
        text = json.dumps(result, indent=2, ensure_ascii=False)
        if args.out:
            try:
                write_atomic(args.out, (text + "\n").encode("utf-8"))
            except OSError as exc:
                raise file_error("--out", args.out, exc) from None
        else:
            print(text)
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not a file problem: a bug to see in full
            raise
        # a file no check above foresaw (the model cache, say): still one line
        print(f"error: {exc.filename}: {exc.strerror or exc}.", file=sys.stderr)
        return 2
    return 0
