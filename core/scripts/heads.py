"""The script of the heads comparison: function-vector heads against induction heads
(``python -m core heads``; the app's :mod:`core.induction`).

Induction heads (Olsson et al. 2022) attend, at a repeated token, to the token that followed
its earlier occurrence. On random tokens repeated twice, a head's induction score is its
attention from each second-copy token to that position, averaged (one forward with eager
attention, which returns the patterns). Function-vector heads are those of largest causal
indirect effect (Todd et al. 2023). The ablation curves (Yin & Steinhardt 2025) mean-ablate
the top ``n`` heads of each ranking at the last token of held-out in-context prompts and score
the answer's first token. The script runs one plain forward per patched head and per ablated
set; the app gets the same numbers from a reused key/value cache and batched edits.
"""

from __future__ import annotations

from core.induction import ablation_prompts
from core.models import ModelSpec
from core.prompts import PromptSettings, icl_prompts
from core.scripts.common import WILSON, assemble, header, literal, model_blocks, print_block
from core.scripts.traces import (
    INDIRECT_EFFECTS,
    MEAN_ACTIVATIONS,
    MEANS_DOC,
    MEASUREMENTS,
    prompts_block,
    settings_block,
)
from core.tasks import Task

INDUCTION = '''

def attention(layer):
    """The attention module of `layer` (the out-projection's parent). With eager attention its
    output is (attn_output, pattern [batch, n_heads, pos, pos])."""
    return get_path(block(layer), LAYOUT["out_proj"].rsplit(".", 1)[0])


def repeated_random_tokens(n_seqs, seq_len, seed):
    """[n_seqs, bos + 2 * seq_len]: `seq_len` distinct random tokens (no special token), then the
    same tokens again, after the BOS token where the tokenizer has one."""
    special = set(tokenizer.all_special_ids)
    d_vocab = unembed(hf).weight.shape[0]
    pool = torch.tensor([i for i in range(min(len(tokenizer), d_vocab)) if i not in special])
    g = torch.Generator().manual_seed(seed)  # its own generator: the same tokens as in the app
    first = torch.stack([pool[torch.randperm(len(pool), generator=g)[:seq_len]] for _ in range(n_seqs)])
    rows = [first, first]  # [n_seqs, seq_len] twice
    if tokenizer.bos_token_id is not None:
        rows.insert(0, torch.full((n_seqs, 1), tokenizer.bos_token_id, dtype=torch.long))
    return torch.cat(rows, dim=1)


def induction_scores(ids, seq_len):
    """[n_layers, n_heads]: each head's mean attention from a second-copy token (query i) to the
    token after its earlier occurrence (key i - seq_len + 1), over the copy and the sequences."""
    previous = hf.config._attn_implementation
    hf.set_attn_implementation("eager")  # only eager attention returns the patterns
    saved = []  # a list made before the trace keeps what is saved inside it
    with model.trace(input_ids=ids, attention_mask=torch.ones_like(ids)):
        for layer in range(N_LAYERS):
            pattern = attention(layer).output[1].float()  # [n_seqs, n_heads, pos, pos] (query, key)
            stripe = pattern.diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)  # queries seq_len-1 .. pos-1
            stripe = stripe[..., -seq_len:]  # [n_seqs, n_heads, seq_len]: the second copy's queries
            saved.append(stripe.mean(-1).mean(0).save())  # [n_heads]
    hf.set_attn_implementation(previous)
    return torch.stack([s.cpu() for s in saved])
'''

ABLATION = '''

def ablated_scores(prompts, target_ids, heads, mean_heads):
    """Mean-ablate `heads` together: each one's last-token output replaced by its clean mean.
    Returns (top-1 is the answer [batch] bool, the answer's log-probability [batch])."""
    by_layer = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    with model.trace(prompts, **LAST):
        for layer in sorted(by_layer):  # edits in execution order: earlier layers first
            z = out_proj(layer).input  # [batch, pos, n_heads * d_head]
            for head in by_layer[layer]:
                z[:, -1, head * D_HEAD : (head + 1) * D_HEAD] = mean_heads[layer, head].to(hf.device, hf.dtype)
        logits = unembed().output[:, -1].save()  # [batch, d_vocab]
    logprob = logits.float().cpu().log_softmax(-1)
    return logprob.argmax(-1) == target_ids, logprob.gather(-1, target_ids[:, None])[:, 0]


def spearman(a, b):
    """Spearman's rank correlation of two 1-D tensors (Pearson's r of their ranks)."""
    ra, rb = (x.argsort().argsort().double() for x in (a, b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))
'''

_COMPUTE = """
METRIC = {metric!r}  # the indirect effect on the answer's probability (the paper) or log-probability
N_MAX = {n_max!r}  # ablate the top 0..N_MAX heads of each ranking
INDUCTION_SETTINGS = {induction!r}

# 1. the function-vector heads: clean means, then every head's indirect effect
mean_heads, _, clean_logits = mean_activations(BUILD_CLEAN)  # [n_layers, n_heads, d_head]
target_ids = torch.tensor([first_token(t) for t in BUILD_TARGETS])  # [batch]
cie = torch.tensor(indirect_effects(CORRUPTED, mean_heads, target_ids, METRIC))  # [n_layers, n_heads]

# 2. the induction heads: attention on random tokens repeated twice
ids = repeated_random_tokens(**INDUCTION_SETTINGS).to(hf.device)  # [n_seqs, pos]
induction = induction_scores(ids, INDUCTION_SETTINGS["seq_len"])  # [n_layers, n_heads]

# 3. mean-ablate the top n heads of each ranking on held-out in-context prompts
total = N_LAYERS * N_HEADS
orders = {{"fv_heads": top_heads(cie, total), "induction_heads": top_heads(induction, total)}}
ablate_ids = torch.tensor([first_token(t) for t in ABLATE_TARGETS])  # [n_prompts]
n = len(ABLATE_CLEAN)
unablated = ablated_scores(ABLATE_CLEAN, ablate_ids, [], mean_heads)  # no head ablated: shared by both
ablation = {{"n": list(range(N_MAX + 1)), "n_prompts": n}}
for name, order in orders.items():
    rows = [unablated]  # rows[k]: the first k heads of `order` ablated together
    rows += [ablated_scores(ABLATE_CLEAN, ablate_ids, order[:k], mean_heads) for k in range(1, N_MAX + 1)]
    n_correct = [int(correct.sum()) for correct, _ in rows]
    ablation[name] = [c / n for c in n_correct]
    ablation[f"{{name}}_ci"] = [wilson(c, n) for c in n_correct]
    ablation[f"{{name}}_mean_logprob"] = [float(logprob.mean()) for _, logprob in rows]
    ablation[f"{{name}}_order"] = order[:N_MAX]

k = max(N_MAX, 1)
top_induction = top_heads(induction, k)
result = {{
    "model": MODEL_ID,
    "task": TASK,
    "settings": SETTINGS,
    "induction": induction.tolist(),
    "induction_settings": INDUCTION_SETTINGS,
    "cie": cie.tolist(),
    "metric": METRIC,
    "top_fv_heads": top_heads(cie, 10),
    "top_induction_heads": top_heads(induction, 10),
    "top_overlap": [h for h in top_heads(cie, k) if h in top_induction],
    "rank_correlation": spearman(cie.flatten(), induction.flatten()),
    "ablation": ablation,
}}"""


def heads_script(
    model: ModelSpec | str,
    task: Task,
    settings: PromptSettings,
    metric: str = "prob",
    n_eval: int = 50,
    n_max: int = 10,
    n_seqs: int = 4,
    seq_len: int = 25,
    induction_seed: int = 0,
) -> str:
    """A script reproducing ``python -m core heads`` (same keys, without ``seconds``): both
    scores of every head, the top heads, their rank correlation and the ablation curves on at
    most ``n_eval`` held-out in-context prompts. The induction sequences are the app's
    (``n_seqs`` x ``seq_len`` tokens, seeded by ``induction_seed``: 0 on the page, the prompt
    seed on the CLI)."""
    spec = model if isinstance(model, ModelSpec) else ModelSpec(model_id=str(model))
    metric = metric if metric in ("prob", "logprob") else "prob"
    build = icl_prompts(task, settings)  # as core.fv.build_workbench
    ablate = ablation_prompts(task, settings, n_eval)
    induction = {"n_seqs": int(n_seqs), "seq_len": int(seq_len), "seed": int(induction_seed)}
    return assemble(
        header(
            f"Function-vector heads vs induction heads on the task {task.name!r}",
            MEANS_DOC + " Each head's indirect effect: on the corrupted prompts its last-token output is "
            "replaced by that mean and the answer's probability rises by it. Each head's induction score: "
            "its attention on random tokens repeated twice, from each second-copy token to the token after "
            "its first occurrence (Olsson et al. 2022). Then the top n heads of each ranking are mean-ablated "
            "together on held-out in-context prompts (Yin & Steinhardt 2025).",
        ),
        *model_blocks(spec),
        WILSON,
        MEASUREMENTS,
        MEAN_ACTIVATIONS,
        INDIRECT_EFFECTS,
        INDUCTION,
        ABLATION,
        settings_block(task, settings),
        prompts_block("BUILD", build, ("clean", "targets"), "the clean in-context prompts of the train split"),
        f"# the corrupted prompts: the same demonstrations and queries, labels broken ({settings.corruption})\n"
        f"CORRUPTED = {literal(list(build.corrupted))}",
        prompts_block(
            "ABLATE",
            ablate,
            ("clean", "targets"),
            "held-out in-context prompts (test-split queries, train-split demos) the ablation is scored on",
        ),
        _COMPUTE.format(metric=metric, n_max=int(n_max), induction=induction),
        print_block(),
    )
