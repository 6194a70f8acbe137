"""circuitsvis rendered fully offline (its inlined bundle, never the CDN form)."""

from __future__ import annotations

import circuitsvis as cv
import streamlit as st
import torch


def attention_html(labels: list[str], pattern: torch.Tensor, head: int | None = None) -> str:
    """``pattern [n_heads, pos, pos]``; one head or all heads."""
    if head is not None:
        return cv.attention.attention_pattern(tokens=labels, attention=pattern[head]).local_src
    return cv.attention.attention_patterns(tokens=labels, attention=pattern).local_src


def show_attention(labels: list[str], pattern: torch.Tensor, head: int | None = None, height: int = 620) -> None:
    st.iframe(attention_html(labels, pattern, head), height=height)
