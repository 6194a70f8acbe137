"""``python -m core``: the dashboard's computations from the command line, as JSON.

Bad input prints one line on stderr and exits with status 2; so does a file that cannot be
read or written (``--task-file``, ``--vector``, ``--out``, ``--save``). Files to be written are
checked before the model loads, so a typo in a folder name costs no minutes of computing,
and are written atomically (a reader never sees half of one).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from core.checks import CORRUPTIONS
from core.errors import UserInputError
from core.files import check_writable, write_atomic
from core.models import DEFAULT_MODEL, ModelSpec
from core.server_config import ServerConfig


def _task(args: argparse.Namespace):
    from core.tasks import load_builtin, load_task_file

    if bool(args.task) == bool(args.task_file):
        raise UserInputError("Give exactly one of --task NAME or --task-file FILE.")
    return load_builtin(args.task) if args.task else load_task_file(args.task_file)


def _model(args: argparse.Namespace):
    from transformers.utils import logging as hf_logging

    from core.models import load_model

    hf_logging.disable_progress_bar()  # stderr carries only our one-line errors
    spec = ModelSpec(model_id=args.model, dtype=args.dtype, device=args.device, remote=args.remote)
    return load_model(ServerConfig.read().check(spec))  # the operator's settings hold here too


def _settings(args: argparse.Namespace):
    from core.prompts import PromptSettings

    return PromptSettings(n_shots=args.n_shots, n_prompts=args.n_prompts, seed=args.seed, corruption=args.corruption)


def cmd_info(args: argparse.Namespace) -> dict:
    return _model(args).info()


def cmd_predict(args: argparse.Namespace) -> dict:
    from core.predict import predict

    task = _task(args)
    lm = _model(args)
    result = predict(lm, task, _settings(args))
    return {"model": lm.model_id, "task": task.name, **result.to_json()}


def cmd_attribution(args: argparse.Namespace) -> dict:
    from core import fv
    from core.stats import Accuracy

    task = _task(args)
    lm = _model(args)
    t0 = time.perf_counter()
    wb = fv.build_workbench(lm, task, _settings(args))
    at = fv.run_attribution(lm, wb, metric=args.metric, method=args.method)
    return {
        "model": lm.model_id,
        "task": task.name,
        "settings": wb.settings.to_dict(),
        "mean_prompts": list(wb.prompts.clean),
        "clean_prompts": list(wb.prompts.clean),
        "corrupted_prompts": list(wb.prompts.corrupted),
        "targets": list(wb.prompts.targets),
        "metric": at.metric,
        "method": at.method,
        "icl_accuracy": wb.stats.icl_accuracy,
        "icl_accuracy_ci": Accuracy.of(wb.stats.icl_accuracy, wb.stats.n_prompts).to_json(),
        "cie": at.cie.tolist(),
        "top_heads": [list(h) for h in at.top_heads(20)],
        "seconds": time.perf_counter() - t0,
        "attribution_seconds": at.seconds,
    }


def cmd_fv(args: argparse.Namespace) -> dict:
    from core import checks, fv
    from core.vectors import save_file

    task = _task(args)
    save = _save_target(args) if args.save_path else None
    # everything that needs no model is checked before the (slow) load and attribution
    explicit = fv.parse_head_list(args.head_list) if args.head_list is not None else None
    if explicit is not None:
        checks.check_heads(None, explicit)  # at least one
    layer: int | str = args.layer if args.layer == "auto" else _int(args.layer, "--layer")
    checks.check_coeff(args.coeff)
    lm = _model(args)
    if explicit is not None:
        explicit = checks.check_heads(lm, explicit)
    else:
        checks.check_n_heads(args.heads, lm)
    if layer != "auto":
        layer = checks.check_layer(layer, lm.arch.n_layers)
    t0 = time.perf_counter()
    wb = fv.build_workbench(lm, task, _settings(args))
    at = fv.run_attribution(lm, wb)
    heads = explicit if explicit is not None else at.top_heads(args.heads)
    report = fv.evaluate(lm, wb, heads, layer=layer, n_eval=args.n_eval, coeff=args.coeff)
    out = {"model": lm.model_id, "task": task.name, **report.to_json(), "seconds": time.perf_counter() - t0}
    if save is not None:
        path, name = save
        vec = fv.make_vector(lm, wb, heads, report.layer, name=name)
        try:
            save_file(vec, path)
        except OSError as exc:
            raise _file_error("--save", args.save_path, exc) from None
        out["saved"] = str(path)
    return out


def cmd_compare(args: argparse.Namespace) -> dict:
    from core import checks
    from core.compare import compare_tasks
    from core.tasks import load_builtin, load_task_file

    # every task is read and checked before the (slow) load
    names = [n.strip() for n in (args.tasks or "").split(",") if n.strip()]
    files = [f.strip() for f in (args.task_files or "").split(",") if f.strip()]
    tasks = [load_builtin(n) for n in names] + [load_task_file(f) for f in files]
    checks.check_task_names([t.name for t in tasks])
    layer: int | str = args.layer if args.layer == "auto" else _int(args.layer, "--layer")
    lm = _model(args)
    result = compare_tasks(
        lm, tasks, _settings(args), top_k=args.top_k, layer=layer, n_eval=args.n_eval, metric=args.metric
    )
    return {"model": lm.model_id, **result.to_json()}


def cmd_heads(args: argparse.Namespace) -> dict:
    from core import checks, fv, induction

    task = _task(args)
    lm = _model(args)
    checks.check_n_heads(args.n_max, lm)
    settings = _settings(args)
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

    task = _task(args)
    settings = _settings(args)
    targets = {"--out": args.html_path, "--json": args.json_path}
    if args.html_path and args.json_path and Path(args.html_path).resolve() == Path(args.json_path).resolve():
        raise UserInputError("--out and --json would write the same file.")
    for flag, path in targets.items():  # before the model loads, not after the work is done
        if path:
            try:
                check_writable(path)
            except OSError as exc:
                raise _file_error(flag, path, exc) from None
    if args.prompt is not None:
        checks.check_text(args.prompt, "generation prompt")
    checks.check_max_new_tokens(args.max_new_tokens)
    lm = _model(args)
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
            raise _file_error(flag, path, exc) from None
    if args.json_path:  # the whole report is in the file: stdout gets the verdict
        return {"html": args.html_path, "json": args.json_path, "verdict": data["verdict"], "seconds": data["seconds"]}
    return data


def _save_target(args: argparse.Namespace) -> tuple[Path, str]:
    """``--save FILE``: the path and the vector's name (the file's stem), checked before any work.

    The name goes into the file's header, and a name that loads refuse would make a file
    nobody can use; the file and its ``.json`` sidecar must not be ``--out``'s file.
    """
    from core.vectors import check_name, sidecar_path

    path = Path(args.save_path)
    name = path.stem.replace(".", "_") or "fv"
    try:
        name = check_name(name)
    except UserInputError as exc:
        raise UserInputError(f"--save {args.save_path}: the vector is named after the file. {exc}") from None
    try:
        sidecar = sidecar_path(path)
    except UserInputError as exc:
        raise UserInputError(f"--save: {exc}") from None
    if args.out and Path(args.out).resolve() in (path.resolve(), sidecar.resolve()):
        raise UserInputError(f"--out {args.out} and --save {args.save_path} would write the same file.")
    for target in (path, sidecar):
        try:
            check_writable(target)
        except OSError as exc:
            raise _file_error("--save", str(target), exc) from None
    return path, name


def cmd_steer(args: argparse.Namespace) -> dict:
    from core import checks, steer
    from core.steering_vectors import actadd_vector
    from core.vectors import from_bytes

    # everything that needs no model is checked before the (slow) load
    checks.check_text(args.prompt, "prompt")
    checks.check_coeff(args.coeff)
    checks.check_max_new_tokens(args.max_new_tokens)
    given_layer = _int(args.layer, "--layer") if args.layer not in (None, "auto") else None
    data = b""
    if args.vector:
        try:
            data = Path(args.vector).read_bytes()
        except OSError as exc:
            raise _file_error("--vector", args.vector, exc, reading=True) from None
        from_bytes(data, args.model, source=args.vector)  # format and model, before the load
    elif args.positive is None or args.negative is None:
        raise UserInputError("Give --vector FILE, or both --positive TEXT and --negative TEXT.")
    lm = _model(args)
    meta: dict[str, Any]
    if args.vector:
        vec = from_bytes(data, lm.model_id, lm.arch.d_model, source=args.vector)
        values, layer, meta = vec.values, vec.layer, vec.metadata()
    else:
        layer = given_layer if given_layer is not None else 6
        values, aligned = actadd_vector(lm, args.positive, args.negative, layer)
        meta = {"method": "actadd", "positive": args.positive, "negative": args.negative, "aligned_tokens": aligned}
    if given_layer is not None:
        layer = given_layer
    mode = args.mode or ("prompt" if values.dim() == 2 else "last")
    results = steer.generate_pair(
        lm,
        [args.prompt],
        values,
        layer=layer,
        coeff=args.coeff,
        mode=mode,
        max_new_tokens=args.max_new_tokens,
        sample=args.sample,
        seed=args.seed,
    )
    r = results[0]
    return {
        "model": lm.model_id,
        "prompt": args.prompt,
        "unsteered": r.unsteered[0],
        "steered": r.steered[0],
        "settings": {
            "layer": layer,
            "coeff": args.coeff,
            "mode": mode,
            "max_new_tokens": args.max_new_tokens,
            "seed": args.seed,
            "sample": args.sample,
        },
        "vector": meta,
    }


def _file_error(flag: str, path: str, exc: OSError, reading: bool = False) -> UserInputError:
    """The one line a person sees for a file the CLI cannot read or write: which flag, which
    file, and what is wrong in words (not an errno or a traceback)."""
    folder = Path(path).parent
    if isinstance(exc, FileNotFoundError) and not reading:
        why = f"the folder {folder} does not exist"
    elif isinstance(exc, NotADirectoryError):
        why = f"{folder} is not a folder" if not reading else "a part of the path is not a folder"
    elif isinstance(exc, IsADirectoryError):
        why = "it is a folder; give a file name"
    elif isinstance(exc, PermissionError):
        why = f"no permission to {'read it' if reading else 'write in ' + str(folder)}"
    elif exc.errno == errno.EROFS:
        why = f"{folder} is on a read-only filesystem"
    else:
        why = (exc.strerror or str(exc) or type(exc).__name__).rstrip(".")
    return UserInputError(f"Cannot {'read' if reading else 'write'} {flag} {path}: {why}.")


def _int(value: Any, flag: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{flag} must be an integer (got {value!r}).") from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError("must be a finite number")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error contract: one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="FV Studio command line (JSON output)")
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
    p.add_argument("--coeff", type=_finite, default=1.0)
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
    p.add_argument("--coeff", type=_finite, default=1.0)
    p.add_argument("--mode", choices=["last", "prompt"])
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample", action="store_true")
    return parser


COMMANDS = {
    "info": cmd_info,
    "predict": cmd_predict,
    "attribution": cmd_attribution,
    "fv": cmd_fv,
    "compare": cmd_compare,
    "heads": cmd_heads,
    "pairs": cmd_pairs,
    "report": cmd_report,
    "steer": cmd_steer,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.out:
            try:
                check_writable(args.out)  # before the model loads, not after the work is done
            except OSError as exc:
                raise _file_error("--out", args.out, exc) from None
        result = COMMANDS[args.command](args)
        text = json.dumps(result, indent=2, ensure_ascii=False)
        if args.out:
            try:
                write_atomic(args.out, (text + "\n").encode("utf-8"))
            except OSError as exc:
                raise _file_error("--out", args.out, exc) from None
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
