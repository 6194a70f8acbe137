"""The course's experiments as data: the guided lesson's default requests and the recipes'
settings (the ARENA chapter "Function Vectors & Model Steering", whose steps the lesson follows).

One place for them, read by the lesson pages and the Recipes menu (``dashboard/lesson.py``,
``dashboard/recipes.py``, their defaults in ``dashboard/state.py``) and by ``python -m core
warm`` (:mod:`core.cli.warm`), which computes exactly these requests ahead of a class so the
lesson and the recipes answer at once.

Layers are written for the default model's 30 layers (the course's, written for a 48-layer
model, scaled to it) and scaled to the loaded model by :func:`scaled_layer`, so every step
runs on any supported model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # core.steer loads the model stack; a cached CLI answer must not (core.cli)
    from core.steer import Decoding

REFERENCE_LAYERS = 30  # the default model's depth, the scale of the layers below


def scaled_layer(layer: int, n_layers: int, of: int = REFERENCE_LAYERS) -> int:
    """``layer`` of an ``of``-layer model at the same depth fraction of an ``n_layers`` model."""
    return max(0, min(n_layers - 1, round(layer * n_layers / of)))


# ---- step 1: the model and nnsight ------------------------------------------------------------
ANATOMY_PROMPT = "The Eiffel Tower is in the city of"
ANATOMY_LAYER = 20  # of 30: the layer whose activation shapes step 1 shows

# ---- step 2: task-encoding hidden states --------------------------------------------------------
N_EVAL = 50  # test queries of the h-vector sweep and the function vector (the tool pages' default)
N_TABLE = 12  # queries in step 2's per-query table

# ---- step 3: function vectors ---------------------------------------------------------------------
FV_TASK = "country_capital"  # the course's task for steering with a function vector
NETHERLANDS = "When you think of Netherlands, you usually think of"
# the course's steering prompt of each task it steers (any other task gets NETHERLANDS)
FV_STEER_PROMPTS = {"country_capital": NETHERLANDS, "antonym": 'The word "hot" means'}
FV_COEFF = 1.0  # the function vector's coefficient in free generation
FV_MAX_NEW = 30  # greedy new tokens of the steered free generation
HELD_OUT_FV = "fv_held_out"  # the name of the vector built without the prompt's pairs


def fv_steer_prompt(task_name: str) -> str:
    """Step 3's steering prompt for a task: the course's own for it, else the Netherlands one."""
    return FV_STEER_PROMPTS.get(task_name, NETHERLANDS)


# ---- step 4: activation addition (Turner et al. 2023) --------------------------------------------
ADD_TEMPERATURE, ADD_TOP_P, ADD_REPETITION_PENALTY = 1.0, 0.3, 1.2  # the course's sampling settings
ADD_SAMPLES, ADD_SEED = 3, 0  # comparisons (samples) per column, and the fixed seed
ADD_MAX_NEW = 40
ADD_BOS = False  # prepend the beginning-of-sequence token to every prompt


def add_sampling(n_samples: int = ADD_SAMPLES, seed: int = ADD_SEED) -> Decoding:
    """Step 4's decoding: the course's sampling settings, ``n_samples`` per column from ``seed``."""
    from core.steer import Decoding

    return Decoding(
        sample=True,
        temperature=ADD_TEMPERATURE,
        top_p=ADD_TOP_P,
        repetition_penalty=ADD_REPETITION_PENALTY,
        n_samples=n_samples,
        seed=seed,
    )


@dataclass(frozen=True)
class AdditionsExperiment:
    """One activation-addition experiment: ``additions`` (one ``coefficient "prompt"`` per line,
    :func:`core.additions.parse_additions`) at ``layer`` (of 30) on the prompt ``prompt``."""

    additions: str
    layer: int
    prompt: str


LOVE_HATE = AdditionsExperiment('+5 "Love "\n-5 "Hate"', 6, "I hate you because")  # step 4's default
WEDDINGS = AdditionsExperiment(
    '+4 "I talk about weddings constantly"\n-4 "I do not talk about weddings constantly"',
    12,  # the course's layer 20 of 48
    "I went up to my friend and said",
)
EIFFEL_ROME = AdditionsExperiment(
    '+10 "The Eiffel Tower is in Rome"\n-10 "The Eiffel Tower is in France"',
    15,  # the course's layer 24 of 48
    "To see the eiffel tower, people flock to",
)
ADDITIONS_EXPERIMENTS = (LOVE_HATE, WEDDINGS, EIFFEL_ROME)

# ---- step 5: contrastive activation addition (Rimsky et al. 2024) ---------------------------------
CAA_PAIRS = (
    ("I love spending time with you.", "I hate spending time with you."),
    ("What a wonderful day this is!", "What a terrible day this is!"),
    ("This film made me so happy.", "This film made me so angry."),
    ("You are my best friend.", "You are my worst enemy."),
    ("The food here is delicious.", "The food here is disgusting."),
    ("I feel great about the future.", "I feel awful about the future."),
)
CAA_PROMPT = "I hate you because"
CAA_COEFF = 4.0
CAA_MAX_NEW = 30  # greedy


def caa_layer(n_layers: int) -> int:
    """The default layer of a contrastive vector: 40% of the way up (the Steering vectors page's too)."""
    return round(0.4 * (n_layers - 1))
