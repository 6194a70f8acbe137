"""circuitsvis rendered fully offline (its inlined bundle, never the CDN form)."""

from __future__ import annotations

import circuitsvis as cv
import streamlit as st
import torch


def _safe(label: str) -> str:
    """circuitsvis writes the tokens as JSON inside a <script>: a token holding "</script>"
    would end it and let typed text run as page code. "<" is shown as a look-alike instead."""
    return label.replace("<", "\uff1c")


def attention_html(labels: list[str], pattern: torch.Tensor, head: int | None = None) -> str:
    """``pattern [n_heads, pos, pos]``; one head or all heads."""
    tokens = [_safe(t) for t in labels]
    if head is not None:
        return cv.attention.attention_pattern(tokens=tokens, attention=pattern[head]).local_src
    return cv.attention.attention_patterns(tokens=tokens, attention=pattern).local_src


def show_attention(labels: list[str], pattern: torch.Tensor, head: int | None = None) -> None:
    """The iframe takes the height of what circuitsvis draws (a pattern grows with the prompt)."""
    st.iframe(attention_html(labels, pattern, head), height="content")
