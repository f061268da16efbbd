"""SwinIR's building blocks: shifted-window attention and the residual Swin Transformer block.

Module and parameter names follow the official ``models/network_swinir.py`` (JingyunLiang/SwinIR,
also BasicSR's ``swinir_arch.py``) so the model-zoo files load key for key. Two differences, both
invisible in the outputs: attention runs through ``F.scaled_dot_product_attention`` with the
relative-position bias and the shift mask as its additive mask, and the shift mask is computed for
the input's size (and cached by :class:`~medsr.models.swinir.SwinIR`) instead of being a buffer
fixed at ``img_size``; the released files' ``relative_position_index``/``attn_mask`` buffers are
checked and dropped by :mod:`medsr.models.weights.swinir`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

# Official value added to the logits of token pairs from different regions of a shifted window:
# exp(-100) is 0 in float32, so it acts as -inf without making fully masked rows NaN.
SHIFT_MASK_VALUE = -100.0


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """(B, H, W, C) -> (B * nW, window_size, window_size, C), windows in row-major order."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)


def window_reverse(windows: Tensor, window_size: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws, ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window_size, w // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window_size: int) -> Tensor:
    """(N, N) index into the (2ws-1)^2 bias table for every token pair of a window (N = ws^2)."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    ).flatten(1)  # (2, N): row, column of each token
    rel = (coords[:, :, None] - coords[:, None, :]) + (window_size - 1)  # (2, N, N), >= 0
    return rel[0] * (2 * window_size - 1) + rel[1]


def shift_mask(h: int, w: int, window_size: int, shift: int, device=None) -> Tensor:
    """(nW, N, N) additive mask of a cyclically shifted (h, w) map: 0 within a region, -100 across.

    After ``torch.roll(-shift)`` the last window row/column holds tokens from up to three
    regions of the unshifted map (rows ``[0, h-ws)``, ``[h-ws, h-shift)``, ``[h-shift, h)``, the same
    for columns); tokens of different regions must not attend to each other. Built from tensor
    comparisons only, so tracing with a symbolic ``h``/``w`` keeps it dynamic.
    """

    def region(n: int) -> Tensor:
        idx = torch.arange(n, device=device)
        return (idx >= n - window_size).long() + (idx >= n - shift).long()

    label = region(h)[:, None] * 3 + region(w)[None, :]
    windows = window_partition(label[None, :, :, None], window_size).flatten(1)  # (nW, N)
    differ = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(differ.shape, device=device).masked_fill(differ, SHIFT_MASK_VALUE)


class DropPath(nn.Module):
    """Stochastic depth: drops a sample's whole residual branch with probability ``p`` (training)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Sequential):
    """fc1 - GELU - dropout - fc2 - dropout (keys ``mlp.fc1``/``mlp.fc2``)."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learned relative-position bias.

    Args:
        dim: token channels.
        window_size: window side (tokens per window N = window_size^2).
        num_heads: attention heads (``dim`` must be divisible by it).
        qkv_bias: learnable bias of the query/key/value projection.
        qk_scale: logit scale; None = head_dim ** -0.5.
        attn_drop: dropout on the attention weights (training).
        proj_drop: dropout after the output projection.
    """

    def __init__(
        self,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5  # `or`: as the official code
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        # Derived from window_size, so not stored: the official files' copy is checked on load.
        self.register_buffer(
            "relative_position_index", relative_position_index(window_size), persistent=False
        )
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = float(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> Tensor:
        """(heads, N, N) relative-position bias."""
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend within each window.

        Args:
            x: (B * nW, N, C) window tokens, batch-major.
            mask: (nW, N, N) shift mask, or None for unshifted windows.
        """
        bw, n, c = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).view(bw, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.position_bias()
        if mask is not None:
            # Windows go next to the heads, (B, nW * heads, N, d), so the (nW * heads, N, N) mask
            # broadcasts over the batch as a 4-D mask every SDPA kernel takes.
            nw = mask.shape[0]
            bias = (bias.unsqueeze(0) + mask.unsqueeze(1)).reshape(nw * heads, n, n)
            q, k, v = (t.reshape(-1, nw * heads, n, c // heads) for t in (q, k, v))
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=bias.to(q.dtype),
            dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale,
        )
        out = out.reshape(bw, heads, n, c // heads).transpose(1, 2).reshape(bw, n, c)
        return self.proj_drop(self.proj(out))


class SwinTransformerBlock(nn.Module):
    """Pre-norm transformer block over (shifted) windows: x + attn(norm1(x)); x + mlp(norm2(x)).

    Args:
        dim: token channels.
        num_heads: attention heads.
        window_size: window side.
        shift_size: cyclic shift (window_size // 2 in every second block, else 0).
        mlp_ratio: hidden width of the MLP over ``dim``.
        qkv_bias, qk_scale, drop, attn_drop: see :class:`WindowAttention`.
        drop_path: stochastic-depth rate of both residual branches.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim, window_size, num_heads, qkv_bias, qk_scale, attn_drop, drop
        )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor, x_size: tuple[int, int], mask: Tensor | None) -> Tensor:
        """x: (B, H * W, C) tokens of an (H, W) map, H and W multiples of the window."""
        h, w = x_size
        b, _, c = x.shape
        ws, shift = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if shift:
            y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
        y = self.attn(window_partition(y, ws).view(-1, ws * ws, c), mask if shift else None)
        y = window_reverse(y.view(-1, ws, ws, c), ws, h, w)
        if shift:
            y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def conv_block(dim: int, resi_connection: str) -> nn.Module:
    """The conv closing each RSTB and the body: one 3x3 conv, or ``3conv`` (3x3 to dim/4,
    1x1, 3x3 back, LeakyReLU 0.2 between: fewer parameters, SwinIR-L)."""
    if resi_connection == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    quarter = dim // 4
    return nn.Sequential(
        nn.Conv2d(dim, quarter, 3, 1, 1),
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
        nn.Conv2d(quarter, quarter, 1, 1, 0),
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
        nn.Conv2d(quarter, dim, 3, 1, 1),
    )


class BlockStack(nn.Module):
    """``depth`` Swin blocks alternating unshifted / shifted windows (key ``residual_group.blocks``)."""

    def __init__(self, blocks: Sequence[SwinTransformerBlock], use_checkpoint: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.use_checkpoint = use_checkpoint

    def forward(self, x: Tensor, x_size: tuple[int, int], mask: Tensor | None) -> Tensor:
        for blk in self.blocks:
            if self.use_checkpoint and self.training:
                x = checkpoint(blk, x, x_size, mask, use_reentrant=False)
            else:
                x = blk(x, x_size, mask)
        return x


class RSTB(nn.Module):
    """Residual Swin Transformer Block: Swin blocks, a conv on the (H, W) map, identity skip.

    Args:
        dim: channels.
        depth: Swin blocks.
        num_heads: attention heads.
        window_size: window side.
        shift_size: shift of the odd-indexed blocks (0 disables shifting).
        drop_path: per-block stochastic-depth rates (``depth`` values).
        resi_connection: ``1conv`` or ``3conv`` (:func:`conv_block`).
        use_checkpoint: recompute the blocks in backward to save memory (training).
        **block_kwargs: ``mlp_ratio, qkv_bias, qk_scale, drop, attn_drop`` of every block.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        drop_path: Sequence[float],
        resi_connection: str,
        use_checkpoint: bool,
        **block_kwargs,
    ) -> None:
        super().__init__()
        blocks = [
            SwinTransformerBlock(
                dim,
                num_heads,
                window_size,
                shift_size=0 if i % 2 == 0 else shift_size,
                drop_path=drop_path[i],
                **block_kwargs,
            )
            for i in range(depth)
        ]
        self.residual_group = BlockStack(blocks, use_checkpoint)
        self.conv = conv_block(dim, resi_connection)

    def forward(self, x: Tensor, x_size: tuple[int, int], mask: Tensor | None) -> Tensor:
        b, _, c = x.shape
        y = self.residual_group(x, x_size, mask)
        y = self.conv(y.transpose(1, 2).reshape(b, c, x_size[0], x_size[1]))
        return y.flatten(2).transpose(1, 2) + x
