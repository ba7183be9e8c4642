"""SAM's mask decoder computed in another order for export to ONNX Runtime on a CPU: the same
function of the same weights (outputs equal to 6e-5 on LiteMedSAM) in about 60 % of the time of an
export with only the upscaling re-laid out: for a box prompt on 2 cores the export alone took 12.7
ms against 20.7 ms (the fastest of 12 interleaved rounds).

Why it is written here: ONNX Runtime runs SAM's own graph well short of the machine's speed, in
three places this module changes:

- Cross attention: each of the five projects all 64x64 image tokens to 128 channels, although only
  a handful of prompt tokens meet them; :mod:`tasks.models.token_attention` multiplies the prompt
  side into the weights first (image-sized products 8 x N wide instead of 128).
- Upscaling: two 2x2 stride-2 transposed convolutions around a channel LayerNorm, in (B, C, H, W)
  layout. ONNX Runtime's CPU ``ConvTranspose`` spends most of its time scattering its outputs (the
  64 -> 32 channel one ran at a fifth of matmul speed), and the LayerNorm over axis 1 is exported as
  five ops. Each output pixel of such a convolution comes from exactly one input pixel, at one of
  four offsets (dy, dx); per output row offset dy it is one matrix product whose columns are dx then
  the channels. Stacking the dy products row by row gives the output in raster order, tokens by
  channels: so both upscalings are matrix products, the LayerNorm runs over the last axis (one fused
  op), and the masks come out in raster order without a transpose (an eight-axis transpose of the
  4 x 256 x 256 masks took 1.5 ms of 19).
- The image's positional encoding is a constant of the checkpoint, so the graph holds it (in token
  order) instead of taking 4 MB a call; the dense prompt may be the no-mask embedding's one vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tasks.models.token_attention import image_to_tokens, tokens_to_image


def row_weights(conv: torch.nn.ConvTranspose2d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 2x2 stride-2 transposed convolution as one (C_in, 2 * C_out) matrix per output row offset dy,
    stacked (2, C_in, 2 * C_out), whose columns are the column offset dx then the channels; and the
    bias repeated to match one matrix's columns."""
    if tuple(conv.kernel_size) != (2, 2) or tuple(conv.stride) != (2, 2) or tuple(conv.padding) != (0, 0):
        raise ValueError(f"a row-offset matrix needs a 2x2 stride-2 unpadded transposed convolution, got {conv}")
    c_in, c_out = conv.weight.shape[:2]
    weight = conv.weight.detach().permute(2, 0, 3, 1).reshape(2, c_in, 2 * c_out).contiguous()
    return weight, conv.bias.detach().repeat(2)


def upscaled(tokens: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, width: int) -> torch.Tensor:
    """A 2x2 stride-2 transposed convolution of (B, H * W, C_in) raster-order tokens on a grid ``width``
    wide, given as :func:`row_weights`: (B, 2H * 2W, C_out), raster order."""
    batch, pixels, _ = tokens.shape
    rows = [(tokens @ weight[dy] + bias).reshape(batch, pixels // width, -1) for dy in range(2)]
    return torch.stack(rows, dim=2).reshape(batch, 4 * pixels, weight.shape[2] // 2)


class CpuMaskDecoder(torch.nn.Module):
    """``mask_decoder.predict_masks`` (every mask and IoU) for prompts on one image each, with the
    image's positional encoding ``image_pe`` (1, C, H, W) built in: ``forward(image_embeddings (B, C,
    H, W), sparse (B, T, C), dense (B, C, H, W) or (B, C, 1, 1))`` -> masks (B, K, 4H, 4W), iou (B, K).
    Uses the decoder's own layers, tokens and heads; only the order of the products differs."""

    def __init__(self, mask_decoder: torch.nn.Module, image_pe: torch.Tensor):
        super().__init__()
        self.decoder = mask_decoder
        _, _, self.height, self.width = image_pe.shape
        self.register_buffer("pe_tokens", image_pe.detach().flatten(2).transpose(1, 2).contiguous())
        first, norm, *activations = mask_decoder.output_upscaling
        second = activations.pop(1)
        if not all(isinstance(a, torch.nn.GELU) and a.approximate == "none" for a in activations):
            raise ValueError(f"the CPU decoder computes SAM's exact GELUs, not {activations}")
        self.norm = norm
        for name, conv in (("first", first), ("second", second)):
            weight, bias = row_weights(conv)
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
        """SAM's two-way transformer on image tokens already in (B, HW, C) order, step for step as its
        ``TwoWayAttentionBlock`` (the image's keys, image + PE, made once a layer), with the cross
        attentions of :mod:`tasks.models.token_attention`."""
        transformer = self.decoder.transformer
        queries = tokens
        for layer in transformer.layers:
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(q=queries, k=queries, v=queries)
            else:
                prompted = queries + tokens
                queries = queries + layer.self_attn(q=prompted, k=prompted, v=queries)
            queries = layer.norm1(queries)
            keys = image + self.pe_tokens
            queries = layer.norm2(queries + tokens_to_image(layer.cross_attn_token_to_image, queries + tokens,
                                                            keys, image))
            queries = layer.norm3(queries + layer.mlp(queries))
            image = layer.norm4(image + image_to_tokens(layer.cross_attn_image_to_token, keys, queries + tokens,
                                                        queries))
        attended = tokens_to_image(transformer.final_attn_token_to_image, queries + tokens,
                                   image + self.pe_tokens, image)
        return transformer.norm_final_attn(queries + attended), image

    def _masks(self, image: torch.Tensor, mask_tokens: torch.Tensor) -> torch.Tensor:
        """The upscaled image tokens dotted with each mask token's hypernetwork output: the second
        upscaling's rows of each offset dy dotted separately and stacked, so the masks are raster
        order as they are made."""
        batch = image.shape[0]
        c1, c2 = self.first_weight.shape[2] // 2, self.second_weight.shape[2] // 2
        up = upscaled(image, self.first_weight, self.first_bias, self.width)
        up = F.gelu(F.layer_norm(up, (c1,), self.norm.weight, self.norm.bias, self.norm.eps))
        hypernetworks = self.decoder.output_hypernetworks_mlps
        hyper = torch.stack([mlp(mask_tokens[:, i]) for i, mlp in enumerate(hypernetworks)], dim=1)
        k, height, width = len(hypernetworks), 4 * self.height, 4 * self.width
        rows = [hyper @ F.gelu(up @ self.second_weight[dy] + self.second_bias).reshape(batch, -1, c2).transpose(1, 2)
                for dy in range(2)]  # (B, K, H/2 * W): the output rows of one offset dy
        return torch.stack([r.reshape(batch, k, height // 2, width) for r in rows], dim=3).reshape(
            batch, k, height, width)
