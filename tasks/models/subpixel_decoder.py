"""SAM's mask decoder computed in another order for export to ONNX Runtime on a CPU: the same
function of the same weights (outputs equal to 3e-5 on LiteMedSAM), about a fifth less time a prompt.

Why it is written here: SAM's decoder (LiteMedSAM's is the same) upscales its 64x64 image tokens
with two 2x2 stride-2 transposed convolutions around a channel LayerNorm and GELUs, in (B, C, H, W)
layout. ONNX Runtime's CPU ``ConvTranspose`` spends most of its time scattering the outputs into
place (the 64 -> 32 channel one ran at a fifth of the machine's matmul speed, a quarter of the
decoder's time), and the LayerNorm over axis 1 is exported as five separate ops. A stride-2
transposed convolution with a 2x2 kernel writes each output pixel from exactly one input pixel, so
it is a matrix product per input pixel whose outputs are the 2x2 sub-pixels; kept in that
"sub-pixel" order (tokens, then sub-pixels, then channels), both upscalings are plain matrix
products, the LayerNorm runs over the last axis (one fused op) and the mask product too, and only
the final masks (4 x 256 x 256) are put back in raster order. The image's positional encoding is a
constant of the checkpoint, so the graph holds it (in token order) instead of taking 4 MB a call;
the dense prompt may be the no-mask embedding's single vector, added to every token by broadcasting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def subpixel_weight(conv: torch.nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2x2 stride-2 transposed convolution's weight as a (C_in, 4 * C_out) matrix whose output columns
    are the sub-pixels (dy, dx) then the channels, and its bias repeated to match."""
    if tuple(conv.kernel_size) != (2, 2) or tuple(conv.stride) != (2, 2) or tuple(conv.padding) != (0, 0):
        raise ValueError(f"a sub-pixel matrix needs a 2x2 stride-2 unpadded transposed convolution, got {conv}")
    c_in, c_out = conv.weight.shape[:2]
    weight = conv.weight.detach().permute(0, 2, 3, 1).reshape(c_in, 4 * c_out).contiguous()
    return weight, conv.bias.detach().repeat(4)


class SubpixelMaskDecoder(torch.nn.Module):
    """``mask_decoder.predict_masks`` (every mask and IoU) for prompts on one image each, with the
    image's positional encoding ``image_pe`` (1, C, H, W) built in: ``forward(image_embeddings (B, C,
    H, W), sparse (B, T, C), dense (B, C, H, W) or (B, C, 1, 1))`` -> masks (B, K, 4H, 4W), iou (B, K).
    Shares the decoder's transformer, tokens and heads; only the upscaling is re-laid out."""

    def __init__(self, mask_decoder: torch.nn.Module, image_pe: torch.Tensor):
        super().__init__()
        self.decoder = mask_decoder
        _, _, self.height, self.width = image_pe.shape
        self.register_buffer("pe_tokens", image_pe.detach().flatten(2).transpose(1, 2).contiguous())
        first, norm, *activations = mask_decoder.output_upscaling
        second = activations.pop(1)
        if not all(isinstance(a, torch.nn.GELU) and a.approximate == "none" for a in activations):
            raise ValueError(f"the sub-pixel decoder computes SAM's exact GELUs, not {activations}")
        self.norm = norm
        for name, conv in (("first", first), ("second", second)):
            weight, bias = subpixel_weight(conv)
            self.register_buffer(f"{name}_weight", weight)
            self.register_buffer(f"{name}_bias", bias)

    def forward(self, image_embeddings: torch.Tensor, sparse: torch.Tensor,
                dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        decoder = self.decoder
        batch = sparse.shape[0]
        outputs = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight])[None].expand(batch, -1, -1)
        tokens = torch.cat((outputs, sparse), dim=1)
        image = (image_embeddings + dense).flatten(2).transpose(1, 2)
        queries, image = self._transformer(tokens, image)
        masks = self._masks(image, queries[:, 1 : 1 + decoder.num_mask_tokens])
        return masks, decoder.iou_prediction_head(queries[:, 0])

    def _transformer(self, tokens: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two-way transformer on image tokens already in (B, HW, C) order: its layers, then the
        final token-to-image attention."""
        transformer = self.decoder.transformer
        queries = tokens
        for layer in transformer.layers:
            queries, image = layer(queries=queries, keys=image, query_pe=tokens, key_pe=self.pe_tokens)
        attended = transformer.final_attn_token_to_image(q=queries + tokens, k=image + self.pe_tokens, v=image)
        return transformer.norm_final_attn(queries + attended), image

    def _masks(self, image: torch.Tensor, mask_tokens: torch.Tensor) -> torch.Tensor:
        """The upscaled image tokens dotted with each mask token's hypernetwork output, in sub-pixel order
        until the end: token (y, x), then sub-pixels (dy, dx) and (ey, ex), land on pixel
        (4y + 2dy + ey, 4x + 2dx + ex)."""
        batch, pixels, _ = image.shape
        c1, c2 = self.first_weight.shape[1] // 4, self.second_weight.shape[1] // 4
        up = (image @ self.first_weight + self.first_bias).reshape(batch, 4 * pixels, c1)
        up = F.gelu(F.layer_norm(up, (c1,), self.norm.weight, self.norm.bias, self.norm.eps))
        up = F.gelu((up @ self.second_weight + self.second_bias).reshape(batch, 16 * pixels, c2))
        hypernetworks = self.decoder.output_hypernetworks_mlps
        hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(hypernetworks)], dim=1)
        k, h, w = len(hypernetworks), self.height, self.width
        masks = (up @ hyper.transpose(1, 2)).reshape(batch, h, w, 2, 2, 2, 2, k)
        return masks.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(batch, k, 4 * h, 4 * w)
