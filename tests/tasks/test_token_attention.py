"""The folded cross attentions equal SAM's own ``Attention`` on the same inputs, in both directions,
for token counts below and above the break-even (random weights with large biases, so that a dropped
or misplaced bias term shows; plumbing of an identity, no model quality is claimed)."""

from __future__ import annotations

import pytest
import torch
from segment_anything.modeling.transformer import Attention

from tasks.models.token_attention import image_to_tokens, tokens_to_image


@pytest.fixture(scope="module")
def attention() -> Attention:
    torch.manual_seed(0)
    module = Attention(64, num_heads=4, downsample_rate=2).eval()
    with torch.no_grad():
        for linear in (module.q_proj, module.k_proj, module.v_proj, module.out_proj):
            linear.bias.normal_(0, 2.0)
    return module


@pytest.mark.parametrize("tokens", [1, 7, 40])
def test_tokens_attending_to_the_image_equal_sam_attention(attention: Attention, tokens: int):
    generator = torch.Generator().manual_seed(tokens)
    queries = torch.randn((2, tokens, 64), generator=generator)
    keys, values = torch.randn((2, 2, 300, 64), generator=generator)
    with torch.inference_mode():
        want = attention(q=queries, k=keys, v=values)
        got = tokens_to_image(attention, queries, keys, values)
    assert got.shape == want.shape == (2, tokens, 64)
    assert float((got - want).abs().max()) <= 1e-4 * float(want.abs().max())


@pytest.mark.parametrize("tokens", [1, 7, 40])
def test_the_image_attending_to_tokens_equals_sam_attention(attention: Attention, tokens: int):
    generator = torch.Generator().manual_seed(100 + tokens)
    image = torch.randn((2, 300, 64), generator=generator)
    keys, values = torch.randn((2, 2, tokens, 64), generator=generator)
    with torch.inference_mode():
        want = attention(q=image, k=keys, v=values)
        got = image_to_tokens(attention, image, keys, values)
    assert got.shape == want.shape == (2, 300, 64)
    assert float((got - want).abs().max()) <= 1e-4 * float(want.abs().max())
