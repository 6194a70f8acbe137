"""What every ``python -m core`` command shares: reading the task, model and prompt settings
from its arguments, and the one-line messages for numbers and files a person got wrong."""

from __future__ import annotations

import argparse
import errno
import math
from pathlib import Path
from typing import Any, NoReturn

from core.errors import UserInputError
from core.models import ModelSpec
from core.server_config import ServerConfig


def task_of(args: argparse.Namespace):
    from core.tasks import load_builtin, load_task_file

    if bool(args.task) == bool(args.task_file):
        raise UserInputError("Give exactly one of --task NAME or --task-file FILE.")
    return load_builtin(args.task) if args.task else load_task_file(args.task_file)


def spec_of(args: argparse.Namespace) -> ModelSpec:
    """The model the arguments name, checked against the operator's settings, not loaded."""
    spec = ModelSpec(model_id=args.model, dtype=args.dtype, device=args.device, remote=args.remote)
    return ServerConfig.read().check(spec)


def model_of(args: argparse.Namespace):
    from transformers.utils import logging as hf_logging

    from core.models import load_model

    hf_logging.disable_progress_bar()  # stderr carries only our one-line errors
    return load_model(spec_of(args))  # the operator's settings hold here too


def settings_of(args: argparse.Namespace):
    from core.prompts import PromptSettings

    return PromptSettings(n_shots=args.n_shots, n_prompts=args.n_prompts, seed=args.seed, corruption=args.corruption)


def file_error(flag: str, path: str, exc: OSError, reading: bool = False) -> UserInputError:
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


def int_arg(value: Any, flag: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserInputError(f"{flag} must be an integer (got {value!r}).") from None


def finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError("must be a finite number")
    return value


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error contract: one line on stderr, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")
