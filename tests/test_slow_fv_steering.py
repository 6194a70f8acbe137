"""Function vectors steer free-form generation on the default model (slow-marked).

The issue's checks: a country-capital function vector added while continuing "When you
think of Netherlands, you usually think of" makes the greedy continuation mention Amsterdam
within 20 tokens (unsteered, the model talks about "the Netherlands"); an antonym function
vector turns 'The word "hot" means' into a continuation containing "cold". Vectors from the
top 10 heads, added at the newest token on every step at coefficient 1; we look for a middle
layer (12-17) where it happens, as reported for this model.
"""

from __future__ import annotations

import pytest
import torch

from core import fv, steer
from core.models import load_model
from core.prompts import PromptSettings
from core.tasks import load_builtin

pytestmark = pytest.mark.slow
MIDDLE_LAYERS = [12, 13, 14, 15, 16, 17]


@pytest.fixture(scope="module")
def lm():
    return load_model()


@pytest.mark.parametrize(
    "task, prompt, word",
    [
        ("country_capital", "When you think of Netherlands, you usually think of", "Amsterdam"),
        ("antonym", 'The word "hot" means', "cold"),
    ],
)
def test_function_vector_steers_generation(lm, task, prompt, word):
    torch.set_num_threads(1)  # faster and steadier for 1-row generation on a busy machine
    wb = fv.build_workbench(lm, load_builtin(task), PromptSettings(n_shots=10, n_prompts=20))
    at = fv.run_attribution(lm, wb)
    vector = fv.function_vector_values(lm, wb.stats.mean_heads, at.top_heads(10))
    texts = {}
    for layer in MIDDLE_LAYERS:
        result = steer.generate_pair(lm, [prompt], vector, layer, 1.0, "last", 20)[0]
        assert word not in result.unsteered[0]
        texts[layer] = result.steered[0]
        if word in result.steered[0]:
            break
    assert any(word in t for t in texts.values()), texts
