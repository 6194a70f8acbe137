"""Contrastive pairs for CAA (Rimsky et al., 2023): typed lines, CSV, JSON or text files.

Every problem is a :class:`UserInputError` naming the line or item; at most
``limits.MAX_CAA_PAIRS`` pairs, each side at most ``limits.MAX_PROMPT_CHARS`` characters.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from core import limits
from core.errors import UserInputError
from core.tasks import json_list, upload_text


def _check_pair(pos: str, neg: str, where: str) -> tuple[str, str]:
    pos, neg = pos.strip(), neg.strip()
    if not pos or not neg:
        raise UserInputError(f"{where}: the {'positive' if not pos else 'negative'} text is empty.")
    for what, text in (("positive", pos), ("negative", neg)):
        if len(text) > limits.MAX_PROMPT_CHARS:
            raise UserInputError(
                f"{where}: the {what} text has {len(text)} characters (the limit is {limits.MAX_PROMPT_CHARS})."
            )
    return pos, neg


def _checked(pairs: list[tuple[str, str]], source: str) -> list[tuple[str, str]]:
    if not pairs:
        raise UserInputError(f"{source}: no pairs found. Write one pair per line as `positive | negative`.")
    if len(pairs) > limits.MAX_CAA_PAIRS:
        raise UserInputError(f"{source}: {len(pairs)} pairs is too many (the limit is {limits.MAX_CAA_PAIRS}).")
    return pairs


def parse_pairs(text: str, source: str = "Pairs") -> list[tuple[str, str]]:
    """One pair per line, ``positive | negative``; blank lines and ``#`` comments are skipped."""
    pairs = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "|" not in line:
            raise UserInputError(
                f"{source}, line {i} ('{line.strip()[:40]}') has no '|': write it as `positive | negative`."
            )
        pos, neg = line.split("|", 1)
        pairs.append(_check_pair(pos, neg, f"{source}, line {i}"))
        if len(pairs) > limits.MAX_CAA_PAIRS:
            break
    return _checked(pairs, source)


def parse_pairs_file(data: bytes, filename: str) -> list[tuple[str, str]]:
    """CSV with ``positive,negative`` columns, JSON (a list of ``{"positive", "negative"}`` or of
    ``[positive, negative]``), or text lines ``positive | negative``."""
    text = upload_text(data, filename)
    suffix = Path(filename).suffix.lower()
    if suffix == ".json" or text.lstrip().startswith(("[", "{")):
        items = json_list(text, filename, '{"positive": ..., "negative": ...} objects')
        pairs = []
        for i, item in enumerate(items[: limits.MAX_CAA_PAIRS + 1], start=1):
            if isinstance(item, dict) and {"positive", "negative"} <= set(item):
                pos, neg = item["positive"], item["negative"]
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pos, neg = item
            else:
                raise UserInputError(
                    f'{filename}: item {i} is neither {{"positive": ..., "negative": ...}} nor [positive, negative].'
                )
            if not isinstance(pos, str) or not isinstance(neg, str):
                raise UserInputError(f"{filename}: item {i} has a positive or negative that is not text.")
            pairs.append(_check_pair(pos, neg, f"{filename}, item {i}"))
        return _checked(pairs, filename)
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        fields = [(f or "").strip().lower() for f in (reader.fieldnames or [])]
        if "positive" not in fields or "negative" not in fields:
            raise UserInputError(
                f"{filename}: a CSV needs a header with 'positive' and 'negative' columns (found: {', '.join(fields) or 'none'})."
            )
        reader.fieldnames = fields
        pairs = []
        for i, row in enumerate(reader, start=2):
            pairs.append(_check_pair(row.get("positive") or "", row.get("negative") or "", f"{filename}, line {i}"))
            if len(pairs) > limits.MAX_CAA_PAIRS:
                break
        return _checked(pairs, filename)
    return parse_pairs(text, filename)
