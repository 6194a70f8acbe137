"""A task without the pairs a steering prompt gives away.

Steering "When you think of Netherlands, you usually think of" with a country-capital
function vector proves little if (Netherlands, Amsterdam) was one of the pairs the vector was
built from: the model might recall the pair, not apply the function. So the vector is built
from the task minus every pair whose input or output appears in the prompt (whole words,
ignoring case), and the page says which pairs went.
"""

from __future__ import annotations

import dataclasses
import re

from core import limits
from core.errors import UserInputError
from core.tasks import Pair, Task


def _appears(text: str, prompt: str) -> bool:
    text = text.strip()
    if not text:
        return False
    return re.search(rf"(?<!\w){re.escape(text)}(?!\w)", prompt, flags=re.IGNORECASE) is not None


def mentioned_pairs(task: Task, prompt: str) -> list[Pair]:
    """The pairs of ``task`` whose input or output appears in ``prompt`` as a whole word."""
    return [p for p in task.pairs if _appears(p.input, prompt) or _appears(p.output, prompt)]


def without_prompt_pairs(task: Task, prompt: str) -> tuple[Task, list[Pair]]:
    """``(task without the pairs the prompt mentions, the removed pairs)``; the task keeps its
    name with ``-heldout`` appended when something was removed."""
    removed = mentioned_pairs(task, prompt)
    if not removed:
        return task, []
    kept = tuple(p for p in task.pairs if p not in removed)
    if len(kept) < limits.MIN_PAIRS:
        raise UserInputError(
            f"The prompt mentions {len(removed)} of the task's {len(task.pairs)} pairs; fewer than "
            f"{limits.MIN_PAIRS} would be left to build the vector from."
        )
    return dataclasses.replace(task, name=f"{task.name}-heldout", pairs=kept), removed
