"""Tasks: lists of (input, output) pairs, built in or typed/uploaded by a user.

Built-in tasks live in ``assets/tasks/<name>.json`` as a list of ``{"input", "output"}``
objects (the Function Vectors paper's data format); ``index.json`` holds one-line
descriptions. User input is validated here and every problem raises
:class:`~core.errors.UserInputError` naming the line and the reason.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core import limits
from core.errors import UserInputError

TASKS_DIR = Path(__file__).resolve().parent.parent / "assets" / "tasks"
# separators tried in this order on a typed line
SEPARATORS = ("->", "\t", ":", ",")


@dataclass(frozen=True)
class Pair:
    input: str
    output: str


@dataclass(frozen=True)
class Task:
    name: str
    pairs: tuple[Pair, ...]
    description: str = ""

    def __len__(self) -> int:
        return len(self.pairs)

    def to_json(self) -> list[dict[str, str]]:
        return [{"input": p.input, "output": p.output} for p in self.pairs]

    def to_lines(self) -> str:
        return "\n".join(f"{p.input} -> {p.output}" for p in self.pairs)


@lru_cache(maxsize=1)
def _index() -> dict[str, dict[str, str]]:
    return json.loads((TASKS_DIR / "index.json").read_text(encoding="utf-8"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.json") if p.stem != "index")


def describe(name: str) -> str:
    return _index().get(name, {}).get("description", "")


def normalize_name(name: str) -> str:
    return name.strip().lower().replace("-", "_")


@lru_cache(maxsize=64)
def load_builtin(name: str) -> Task:
    key = normalize_name(name)
    if key not in builtin_names():
        raise UserInputError(f"Unknown task '{name}'. Built-in tasks: {', '.join(builtin_names())}.")
    data = json.loads((TASKS_DIR / f"{key}.json").read_text(encoding="utf-8"))
    return validate(key, [(d["input"], d["output"]) for d in data], describe(key))


def validate(name: str, rows: list[tuple[str, str]], description: str = "", where: list[int] | None = None) -> Task:
    """Check pairs and build a task. ``where`` gives the line number of each row for messages."""
    where = where or list(range(1, len(rows) + 1))
    if not rows:
        raise UserInputError("No examples given: enter at least two lines like `hot -> cold`.")
    if len(rows) < limits.MIN_PAIRS:
        raise UserInputError("Only one example given: a task needs at least two (one to show, one to ask).")
    if len(rows) > limits.MAX_PAIRS:
        raise UserInputError(f"Too many pairs: {len(rows)} (the limit is {limits.MAX_PAIRS}).")
    seen: dict[str, int] = {}
    pairs = []
    for line, (x, y) in zip(where, rows):
        x, y = str(x).strip(), str(y).strip()
        problem = _pair_problem(x, y)
        if problem is not None:
            raise UserInputError(f"Line {line}: {problem}.")
        if x in seen:
            raise UserInputError(f"Line {line}: {_duplicate(x, seen[x])}.")
        seen[x] = line
        pairs.append(Pair(x, y))
    return Task(name=name, pairs=tuple(pairs), description=description)


def _pair_problem(x: str, y: str) -> str | None:
    """What is wrong with one stripped (input, output), or None: the rules every task obeys."""
    if not x or not y:
        return f"the {'input' if not x else 'output'} is empty"
    for what, text in (("input", x), ("output", y)):
        if len(text) > limits.MAX_ENTRY_CHARS:
            return f"the {what} has {len(text)} characters (the limit is {limits.MAX_ENTRY_CHARS})"
        if "\n" in text:
            return f"the {what} spans several lines"
    return None


def _duplicate(x: str, first: int) -> str:
    return f"duplicate input '{x}' (first on line {first})"


def _no_separator(i: int, raw: str) -> str:
    return f"Line {i} ('{raw.strip()[:40]}') has no separator"


def _split_line(line: str) -> tuple[str, str] | None:
    for sep in SEPARATORS:
        if sep in line:
            x, y = line.split(sep, 1)
            return x, y
    return None


@dataclass(frozen=True)
class SiftedLines:
    """Typed lines sorted by the rules of :func:`parse_lines`, without stopping at the first
    problem: the good pairs (with their line numbers) and one message per line set aside."""

    rows: tuple[tuple[str, str], ...]
    where: tuple[int, ...]  # the line number of each row
    duplicates: tuple[str, ...]  # "Line 7: duplicate input 'hot' (first on line 2)"
    bad_lines: tuple[str, ...]  # "Line 1 ('Here are the pairs') has no separator", ...


def sift_lines(text: str) -> SiftedLines:
    """Like :func:`parse_lines` (same separators, blank and ``#`` lines skipped, same checks of
    each pair), but a bad line or a repeated input is set aside and reported, not fatal: for
    text a person did not type (a language model's answer, :mod:`core.llm_pairs`)."""
    rows, where, duplicates, bad = [], [], [], []
    seen: dict[str, int] = {}
    for i, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        split = _split_line(raw)
        if split is None:
            bad.append(_no_separator(i, raw))
            continue
        x, y = split[0].strip(), split[1].strip()
        problem = _pair_problem(x, y)
        if problem is not None:
            bad.append(f"Line {i}: {problem}")
        elif x in seen:
            duplicates.append(f"Line {i}: {_duplicate(x, seen[x])}")
        else:
            seen[x] = i
            rows.append((x, y))
            where.append(i)
    return SiftedLines(tuple(rows), tuple(where), tuple(duplicates), tuple(bad))


def parse_lines(text: str, name: str = "custom") -> Task:
    """Typed examples, one per line: ``hot -> cold``, ``hot: cold``, tab or comma separated."""
    lines = text.splitlines()
    if len(lines) > limits.MAX_PAIRS:
        raise UserInputError(f"Too many lines: {len(lines)} (the limit is {limits.MAX_PAIRS} pairs).")
    rows, where = [], []
    for i, raw in enumerate(lines, start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        split = _split_line(raw)
        if split is None:
            raise UserInputError(
                f"{_no_separator(i, raw)}: write it as `input -> output` (or use ':', a tab or a comma)."
            )
        rows.append(split)
        where.append(i)
    return validate(name, rows, "Your own examples", where)


def upload_text(data: bytes, filename: str) -> str:
    """An uploaded file as text: within the size limit, UTF-8 (a BOM is dropped), not binary."""
    if len(data) > limits.MAX_UPLOAD_BYTES:
        raise UserInputError(
            f"{filename} is {len(data) // 1024} KiB; the limit is {limits.MAX_UPLOAD_BYTES // 1024} KiB."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1  # exc.object: the bytes after any BOM
        raise UserInputError(
            f"{filename} is not UTF-8 text (line {line}, byte {exc.start} cannot be decoded). "
            "Save it as UTF-8 JSON, CSV or text."
        ) from None
    if "\x00" in text:
        raise UserInputError(f"{filename} looks like a binary file, not JSON, CSV or text.")
    return text


def json_list(text: str, filename: str, of_what: str) -> list:
    """A JSON list, or the list under a top-level ``"pairs"`` key."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{filename}: invalid JSON at line {exc.lineno}: {exc.msg}.") from None
    if isinstance(data, dict) and "pairs" in data:
        data = data["pairs"]
    if not isinstance(data, list):
        raise UserInputError(f"{filename}: expected a JSON list of {of_what}.")
    return data


def parse_file(data: bytes, filename: str, name: str | None = None) -> Task:
    """An uploaded task: JSON (list of {input, output}), CSV with input,output columns, or lines."""
    name = name or Path(filename).stem or "uploaded"
    text = upload_text(data, filename)
    suffix = Path(filename).suffix.lower()
    if suffix == ".json" or text.lstrip().startswith(("[", "{")):
        return _parse_json(text, filename, name)
    if suffix == ".csv":
        return _parse_csv(text, filename, name)
    return parse_lines(text, name)


def _parse_json(text: str, filename: str, name: str) -> Task:
    data = json_list(text, filename, '{"input": ..., "output": ...} objects')
    rows = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, dict) or "input" not in item or "output" not in item:
            raise UserInputError(f"{filename}: item {i} is not an object with 'input' and 'output'.")
        if not isinstance(item["input"], (str, int, float)) or not isinstance(item["output"], (str, int, float)):
            raise UserInputError(f"{filename}: item {i} has a non-text input or output.")
        rows.append((str(item["input"]), str(item["output"])))
    return validate(name, rows, f"Uploaded from {filename}")


def _parse_csv(text: str, filename: str, name: str) -> Task:
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "input" not in fields or "output" not in fields:
        raise UserInputError(
            f"{filename}: a CSV needs a header with 'input' and 'output' columns "
            f"(found: {', '.join(fields) or 'none'})."
        )
    reader.fieldnames = fields
    rows, where = [], []
    for i, row in enumerate(reader, start=2):
        rows.append((row.get("input") or "", row.get("output") or ""))
        where.append(i)
        if len(rows) > limits.MAX_PAIRS:
            raise UserInputError(f"{filename}: too many rows (the limit is {limits.MAX_PAIRS} pairs).")
    return validate(name, rows, f"Uploaded from {filename}", where)


def load_task_file(path: str | Path) -> Task:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserInputError(f"Cannot read task file {path}: {exc.strerror}.") from None
    return parse_file(data, path.name)
