"""circuitsvis HTML: offline (no CDN) and typed text cannot end its <script>."""

from __future__ import annotations

import torch

from dashboard.circuits import attention_html

ATTACK = "</script><img src=x onerror=alert(1)>"


def test_attention_html_is_offline_and_escapes_typed_tokens():
    labels = ["Q", ":", ATTACK, "A"]
    pattern = torch.softmax(torch.randn(2, 4, 4), -1).tril()
    for head in (None, 1):
        html = attention_html(labels, pattern, head)
        assert "unpkg.com" not in html and "CircuitsVis.render(" in html
        assert html.count("</script>") == 1  # only circuitsvis's own closing tag
        assert "<img" not in html
        assert "\\uff1c/script>\\uff1cimg src=x onerror=alert(1)>" in html  # the token (JSON), with look-alikes
