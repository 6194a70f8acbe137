"""The guided lesson: five steps through the method, in the order of the ARENA chapter
"Function Vectors & Model Steering" (nnsight basics, task-encoding hidden states, function
vectors, activation-addition steering, contrastive activation addition).

Every step's text lives here (what it shows, questions with answers, where to go next); the
pages ``pages/lesson_*.py`` only draw one button, the result and these blocks. Layers in the
lesson's defaults (:mod:`core.course`, which ``warm`` computes ahead) are written for the
default model's 30 layers and scaled to the loaded model (:func:`core.course.scaled_layer`), so
the lesson runs on any supported model.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from core import course
from core.additions import Addition
from core.steer import PairResult
from core.tasks import Task
from dashboard import state

N_STEPS = 5


@dataclass(frozen=True)
class Step:
    n: int
    title: str
    path: str  # the page file, relative to the entrypoint (st.Page / switch_page)
    icon: str
    intro: str
    questions: tuple[tuple[str, str], ...]  # (question, answer)
    try_next: tuple[tuple[str, str], ...]  # (tool page path, what to do there)


def vector_name(prefix: str, task_name: str) -> str:
    """A vector name files can carry (core.vectors.check_name) for a task's vector."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{prefix}_{task_name}")[:60]


NDIF = (
    "**Remote execution on NDIF.** The [National Deep Inference Fabric](https://ndif.us) runs large "
    "open models (Llama-3.1-70B and up) on shared GPUs. nnsight sends the *intervention graph* of a "
    "trace to it (`model.trace(prompt, remote=True)`): your reads, edits and `.save()` calls run next "
    "to the weights, and only the saved values come back. Use it when a model does not fit on your "
    "machine; the code is the same as locally. Here: *Remote (NDIF)* in the sidebar or `--remote` on "
    "the CLI; it needs an `NDIF_API_KEY` and the internet (an offline classroom server has neither, "
    "so the lesson runs locally on the small default model)."
)

STEPS: tuple[Step, ...] = (
    Step(
        1,
        "The model and nnsight",
        "../pages/lesson_1_model.py",
        ":material/looks_one:",
        "A language model reads a prompt as **tokens** and, at the last one, gives a probability to "
        "every possible next token. With nnsight you open the model inside `with model.trace(prompt):` "
        "and read any module's input or output (`.save()` keeps it after the block). Below, one trace "
        "of a free prompt shows the tokens, the top next tokens, and the shapes of the two activations "
        "the method is built on: the **hidden state** (residual stream) a block writes, "
        "`[batch, pos, d_model]`, and the **input of the attention out-projection**, "
        "`[batch, pos, n_heads * d_head]`, which split per head is `[batch, pos, n_heads, d_head]`.",
        (
            (
                "Why read one head at the out-projection's *input*?",
                "There the heads' outputs still sit side by side: head `h` is the slice "
                "`[..., h*d_head:(h+1)*d_head]`. The out-projection mixes them into the residual stream; "
                "a head's slice times its columns of `W_O` is exactly what that head writes, so the "
                "heads' writes (plus the bias) sum to the out-projection's output.",
            ),
            (
                "Why is the answer ` Paris` with a leading space?",
                "The tokenizer keeps the space before a word inside the word's token. The answer to "
                "'... the city of' is the token ' Paris', not 'Paris': every answer in this app is "
                "scored on its first token *with* its leading space.",
            ),
            (
                "When would you run this on NDIF rather than locally?",
                "When the model is too large for your machine (tens of billions of parameters). The "
                "trace is the same; add `remote=True`. Only saved values travel back, so save little "
                "(a last-token slice rather than the whole residual stream).",
            ),
        ),
        (("../pages/model_prompts.py", "the task's in-context prompts, predictions and accuracy"),),
    ),
    Step(
        2,
        "Task-encoding hidden states",
        "../pages/lesson_2_hvector.py",
        ":material/looks_two:",
        "Give the model a few *input → output* examples and a query (an in-context prompt): it does "
        "the task. The **h-vector** is the hidden state at the last token, averaged over many such "
        "prompts, at one layer. Added at that layer to a **zero-shot** prompt (the query alone), it "
        "can make the model do the task with no examples (Hendel et al. 2023; Todd et al. 2023, "
        "section 2.1). The table shows each query without and with the h-vector at the best layer; "
        "the curve adds the h-vector of every layer in turn.",
        (
            (
                "Why average at the *last* token?",
                "That is where the model predicts the answer, and, with causal attention, the only "
                "position that has seen every demonstration and the query. Averaging over prompts "
                "with different queries keeps what they share: the task.",
            ),
            (
                "Why does the curve peak in the middle layers?",
                "Early layers still build up the tokens' meaning; by the last layers the model has "
                "mostly committed to the output of *this* prompt. The task itself is represented in "
                "between, so adding it there does the most.",
            ),
            (
                "A row keeps its wrong prediction but Δ log p is positive. What happened?",
                "The h-vector moved probability toward the answer, not enough to make it the top "
                "token. Accuracy counts only the top token; the log-probability change shows the "
                "smaller effects too.",
            ),
        ),
        (
            ("../pages/task_vectors.py", "the same sweep with more queries"),
            ("../pages/vector_library.py", "the saved h-vector, compared with others"),
        ),
    ),
    Step(
        3,
        "Function vectors",
        "../pages/lesson_3_fv.py",
        ":material/looks_3:",
        "Which parts of the model carry the task? Shuffle the demonstrations' labels (a **corrupted** "
        "prompt: same words, no consistent task), then put back one head's mean output from **clean** "
        "prompts at the last token: the rise in the answer's probability is that head's **causal "
        "indirect effect**. The sum of the top heads' mean outputs is the **function vector** (Todd "
        "et al. 2023). Added at one layer it makes zero-shot and shuffled prompts do the task. Last, "
        "it steers free generation on a prompt, built without any pair the prompt mentions.",
        (
            (
                "Why corrupt by shuffling the labels?",
                "The corrupted prompt keeps the tokens, the format and the number of examples, so "
                "only the task's consistency is gone. A head whose clean output restores the answer "
                "carries the task itself, not the format.",
            ),
            (
                "Why remove the Netherlands pair before steering with the vector?",
                "If (Netherlands, Amsterdam) were among the pairs the vector is averaged over, "
                "'Amsterdam' could come from recall of that pair. Without it, a right answer shows "
                "the vector applies the *function* country → capital to a country it never saw.",
            ),
            (
                "How does a function vector differ from the h-vector of step 2?",
                "The h-vector is the whole hidden state (everything the prompt left there); the "
                "function vector sums only a few heads' outputs, chosen causally. It is more compact "
                "and, in the paper, transfers better to other contexts such as free text.",
            ),
        ),
        (
            ("../pages/head_attribution.py", "every head's effect, pick heads by hand"),
            ("../pages/function_vector.py", "the full evaluation and the heads curve"),
            ("../pages/steer.py", "steer any prompt with a saved vector"),
        ),
    ),
    Step(
        4,
        "Steering vectors",
        "../pages/lesson_4_actadd.py",
        ":material/looks_4:",
        "**Activation addition** (Turner et al. 2023), as in the course: run a few short prompts, "
        "take each one's hidden state at one layer, multiply by a coefficient (positive or negative) "
        "and add them up position by position (the shorter prompts padded at the end with spaces). "
        "The sum, e.g. `+5 × h('Love ') − 5 × h('Hate')`, is added to the first positions of a new "
        "prompt (an addition may name its own layer: `@layer` at the end of its line). The course samples with top-p 0.3 and a repetition penalty of 1.2; both columns "
        "share the seed and the random numbers, so what differs comes from the vector.",
        (
            (
                "Why pad the shorter prompt with spaces?",
                "The sum is taken position by position, so the prompts need the same length; a "
                "space is close to neutral, and the paper does the same.",
            ),
            (
                "The vector is added to the first few positions only. Why does the whole continuation change?",
                "Every later token attends to those positions (their keys and values sit in the "
                "cache), so the edit reaches each new token through attention.",
            ),
            (
                "Why several samples with one seed, rather than one greedy text?",
                "One sample can differ by luck. With coupled sampling the unsteered and steered "
                "samples see the same random numbers, so a consistent difference over several "
                "samples is the vector's doing.",
            ),
        ),
        (
            ("../pages/steering_vectors.py", "the coefficient x layer sweep of Love - Hate"),
            ("../pages/steer.py", "steer your own prompts with a saved vector"),
        ),
    ),
    Step(
        5,
        "Contrastive activation addition",
        "../pages/lesson_5_caa.py",
        ":material/looks_5:",
        "**CAA** (Rimsky et al. 2023), the bonus: instead of two words, many pairs of texts that "
        "differ in one property (kind vs unkind). At every layer the mean difference of the hidden "
        "state at each text's last token is one vector; added at the newest token on every step of "
        "generation it pushes the continuation toward the positive side.",
        (
            (
                "How does CAA differ from activation addition?",
                "It averages many pairs at their last token (one vector per layer, `[d_model]`) and "
                "adds the vector at every new token, where activation addition adds a few positions "
                "of one pair once, at the start of the prompt.",
            ),
            (
                "Why average over many pairs?",
                "Each pair differs in its own words as well as in the property; averaging cancels "
                "the words and keeps the direction the pairs share.",
            ),
            (
                "How large should the coefficient be?",
                "Read it against the residual stream's norm at that layer (the Steering vectors page "
                "shows the ratio): far below it nothing changes, far above it the text breaks down.",
            ),
        ),
        (
            ("../pages/steering_vectors.py", "the CAA vector of every layer and its sweep"),
            ("../pages/steer.py", "steer your own prompts with a saved vector"),
        ),
    ),
)


def step(n: int) -> Step:
    return STEPS[n - 1]


def header(n: int) -> None:
    """Step ``n``'s progress bar, title and what it shows."""
    s = step(n)
    # not st.progress: that is the computations' progress bar (the browser tests wait for it to go)
    cells = "".join(
        f'<span style="display:inline-block;width:2.2rem;height:0.45rem;margin-right:3px;border-radius:3px;'
        f'background:{"#2563eb" if i <= n else "#e5e7eb"}"></span>'
        for i in range(1, N_STEPS + 1)
    )
    st.markdown(f"{cells}&nbsp; **Lesson: step {n} of {N_STEPS}**", unsafe_allow_html=True)
    st.title(f"{n}. {s.title}")
    with st.container(border=True):  # as widgets.explain (not imported: the sidebar imports this module)
        st.markdown(s.intro)


def footer(n: int) -> None:
    """Step ``n``'s questions (answers behind a reveal), tool pages to try next, and the way on."""
    s = step(n)
    st.subheader("Questions")
    for i, (question, answer) in enumerate(s.questions, 1):
        with st.expander(f"Q{i}. {question}"):
            st.markdown(answer)
    st.subheader("Try next")
    for path, what in s.try_next:
        st.page_link(path, label=f"{_title_of(path)}: {what}", icon=":material/arrow_forward:")
    left, right = st.columns(2)
    if n > 1:
        left.page_link(step(n - 1).path, label=f"Step {n - 1}: {step(n - 1).title}", icon=":material/arrow_back:")
    if n < N_STEPS:
        right.page_link(step(n + 1).path, label=f"Step {n + 1}: {step(n + 1).title}", icon=":material/arrow_forward:")


TOOL_TITLES = {
    "../pages/model_prompts.py": "Model & prompts",
    "../pages/task_vectors.py": "Task vectors",
    "../pages/head_attribution.py": "Head attribution",
    "../pages/function_vector.py": "Function vector",
    "../pages/steer.py": "Steer",
    "../pages/steering_vectors.py": "Steering vectors",
    "../pages/vector_library.py": "Vector library",
}


def _title_of(path: str) -> str:
    return TOOL_TITLES.get(path, path)


def prompt_diff_html(clean: str, corrupted: str) -> tuple[str, str]:
    """Both prompts as HTML blocks, the lines where they differ (the shuffled labels) highlighted."""
    a, b = clean.split("\n"), corrupted.split("\n")

    def block(lines: list[str], other: list[str], color: str) -> str:
        rows = []
        for i, line in enumerate(lines):
            text = html.escape(line).replace("$", "&#36;") or "&nbsp;"
            differs = i >= len(other) or other[i] != line
            style = f"background:{color};border-radius:3px" if differs else ""
            rows.append(f'<div style="{style}">{text}</div>')
        return (
            '<div style="font-family:monospace;font-size:0.85rem;line-height:1.35;'
            'border:1px solid #e5e7eb;border-radius:6px;padding:6px">' + "".join(rows) + "</div>"
        )

    return block(a, b, "#bbf7d0"), block(b, a, "#fecaca")


def steering_prompt_for(task: Task) -> None:
    """Step 3's steering prompt follows the task (the course's prompt for it, else Netherlands),
    unless the user typed one of their own."""
    if state.get("lesson_steer_for") == task.name:
        return
    if state.get("lesson_steer_prompt") in (*course.FV_STEER_PROMPTS.values(), course.NETHERLANDS):
        state.set("lesson_steer_prompt", course.fv_steer_prompt(task.name))
    state.set("lesson_steer_for", task.name)


def _use_builtin(name: str) -> None:
    state.set("task_source", "Built-in task")
    state.set("task_name", name)


def course_task_hint(task: Task, name: str) -> None:
    """When the sidebar's task is not the course's one for this step: say so, offer to switch."""
    if task.name == name:
        return
    left, right = st.columns([3, 1])
    left.info(f"The course runs this step on the built-in task **{name}**; yours is **{task.name}**. Both work.")
    right.button(f"Use {name}", key=f"lesson_use_{name}", on_click=_use_builtin, args=(name,))


def _text_block(prompt: str, text: str) -> str:
    def esc(s: str) -> str:
        return html.escape(s).replace("$", "&#36;").replace("\n", "<br>")

    return (
        '<div style="font-family:monospace;font-size:0.9rem;line-height:1.45;border:1px solid #e5e7eb;'
        f'border-radius:6px;padding:6px;margin-bottom:6px"><span style="color:#9ca3af">{esc(prompt)}</span>'
        f"{esc(text) or '<i>(no text)</i>'}</div>"
    )


def show_pair(result: PairResult, steered_label: str, prompt: str | None = None) -> None:
    """Unsteered and steered continuations side by side, one row per sample."""
    shown = result.prompt if prompt is None else prompt
    left, right = st.columns(2)
    left.markdown("**Unsteered**")
    right.markdown(f"**{steered_label}**")
    for u, s in zip(result.unsteered, result.steered):
        left.markdown(_text_block(shown, u), unsafe_allow_html=True)
        right.markdown(_text_block(shown, s), unsafe_allow_html=True)
    if result.note:
        st.caption(result.note)
    if result.first_divergence is None:
        st.caption("The two continuations are identical: try a larger coefficient or another layer.")


def share_actadd(additions: Sequence[Addition]) -> None:
    """A list of the form ``+c "A"``, ``-c "B"`` at one layer is the Steering vectors page's A - B
    vector at coefficient c: set that page's controls to it, so "try next" opens the same vector."""
    if len(additions) != 2:
        return
    pos, neg = sorted(additions, key=lambda a: -a.coeff)
    if pos.coeff > 0 and neg.coeff == -pos.coeff and pos.layer == neg.layer:
        for key, value in (
            ("sv_a_positive", pos.prompt),
            ("sv_a_negative", neg.prompt),
            ("sv_a_layer", pos.layer),
            ("sv_a_coeff", pos.coeff),
            ("sv_a_built", True),
        ):
            state.set(key, value)
