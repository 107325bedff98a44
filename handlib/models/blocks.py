"""Layers shared by the papers' networks: conv/linear + BatchNorm units, the slim ResNet-v1
bottleneck, and folding BatchNorm into the preceding layer for inference.

TensorFlow-slim conventions (CrossInfoNet's released code) are translated once here: BN decay
0.9 is PyTorch momentum 0.1, ε = 1e-5; a layer followed by BN has no bias; strided convs use
``conv2d_same`` padding (k − 1) // 2 on every side, which equals PyTorch's symmetric padding.
"""
from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM = 0.1   # TF decay 0.9
BN_EPS = 1e-5


class ConvBN(nn.Module):
    """Bias-free conv → BatchNorm → optional ReLU (slim ``conv2d`` under a BN arg-scope).

    ``fuse()`` folds the BatchNorm into the conv's weight and a new bias for inference.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 stride: int = 1, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=(kernel_size - 1) // 2, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = _fold_bn(self.conv, self.bn)
            self.bn = nn.Identity()


class LinearBN(nn.Module):
    """Bias-free linear → BatchNorm1d → optional ReLU (slim ``fully_connected`` under BN)."""

    def __init__(self, in_features: int, out_features: int, relu: bool = True):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn: nn.Module = nn.BatchNorm1d(out_features, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.linear(x)))

    @torch.no_grad()
    def fuse(self) -> None:
        if isinstance(self.bn, nn.BatchNorm1d):
            self.linear = _fold_bn(self.linear, self.bn)
            self.bn = nn.Identity()


def _fold_bn(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d):
    """A copy of ``layer`` computing ``bn(layer(x))`` with BN's running statistics.

    w' = w · γ / √(σ² + ε) per output channel; b' = β + (b − μ) · γ / √(σ² + ε).
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = layer.bias if layer.bias is not None else torch.zeros_like(bn.running_mean)
    if isinstance(layer, nn.Conv2d):
        fused = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                          groups=layer.groups, bias=True)
    else:
        fused = nn.Linear(layer.in_features, layer.out_features, bias=True)
    fused = fused.to(device=layer.weight.device, dtype=layer.weight.dtype)
    shape = (-1,) + (1,) * (layer.weight.dim() - 1)
    fused.weight.copy_(layer.weight * scale.reshape(shape))
    fused.bias.copy_(bn.bias + (bias - bn.running_mean) * scale)
    return fused


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Switch ``model`` to eval mode and fold every ConvBN / LinearBN in place; returns it.

    Inference only: the folded model uses the running statistics and cannot be trained further.
    """
    model.eval()
    for module in model.modules():
        if isinstance(module, (ConvBN, LinearBN)):
            module.fuse()
    return model


class Bottleneck(nn.Module):
    """slim ``resnet_v1.bottleneck``: 1×1 (width) → 3×3 (width, stride) → 1×1 (out), + shortcut,
    then ReLU.

    Shortcut: 1×1 conv (stride) + BN when the channel count changes; otherwise identity, or a
    stride-2 1×1 max-pool (= taking every other pixel) when the unit strides.
    """

    def __init__(self, in_channels: int, width: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.reduce = ConvBN(in_channels, width, 1)
        self.spatial = ConvBN(width, width, 3, stride=stride)
        self.expand = ConvBN(width, out_channels, 1, relu=False)
        self.stride = stride
        self.projection = (ConvBN(in_channels, out_channels, 1, stride=stride, relu=False)
                           if in_channels != out_channels else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.projection is not None:
            shortcut = self.projection(x)
        elif self.stride > 1:
            shortcut = x[:, :, ::self.stride, ::self.stride]
        else:
            shortcut = x
        residual = self.expand(self.spatial(self.reduce(x)))
        # In place: saves one large allocation per unit (the expand output is not reused).
        return F.relu_(residual.add_(shortcut))


def resnet_stage(in_channels: int, width: int, out_channels: int, units: int,
                 stride: int) -> nn.Sequential:
    """A slim ``resnet_v1`` block: ``units`` bottlenecks, the stride in the **last** unit."""
    layers = [Bottleneck(in_channels if i == 0 else out_channels, width, out_channels,
                         stride if i == units - 1 else 1) for i in range(units)]
    return nn.Sequential(*layers)


def xavier_init(model: nn.Module, seed: int | None = None) -> None:
    """slim defaults: Xavier-uniform conv/linear weights, zero biases, BN γ = 1 and β = 0.

    Each weight is drawn from its own generator, seeded by (``seed``, the layer's qualified name);
    ``seed`` defaults to the seed torch was last seeded with. So two variants of a model built with
    the same seed start their shared layers (same name and shape) from the same weights, whatever
    other layers either builds: a variant comparison is then paired (issue 13)."""
    base = torch.initial_seed() if seed is None else seed
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight, generator=named_generator(base, name))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def named_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator whose stream depends only on (seed, name) (a stable hash, not Python's)."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


# --- squeeze-and-excitation residual blocks and the stacked-hourglass module (Liu et al.; reused) ---

SE_REDUCTION = 16   # Hu et al.'s default r


class SEBlock(nn.Module):
    """Squeeze-and-excitation (Hu et al.): x · σ(W2 ReLU(W1 avgpool(x))), one gate per channel.

    W1: C → max(1, C // ``reduction``), W2 back to C, both with biases (the paper's FCs, as 1×1 convs)."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Conv2d(channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, channels, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, 1, 1) channel weights in (0, 1)."""
        pooled = x.mean(dim=(-2, -1), keepdim=True)
        return torch.sigmoid(self.excite(F.relu(self.squeeze(pooled))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SEResBlock(nn.Module):
    """Basic SE residual block ("2 conv layers + 1 SE block"): conv3×3-BN-ReLU-conv3×3-BN-SE, plus the
    shortcut (1×1 conv + BN when the channel count or the stride changes, else identity), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 reduction: int = SE_REDUCTION):
        super().__init__()
        self.conv1 = ConvBN(in_channels, out_channels, 3, stride=stride)
        self.conv2 = ConvBN(out_channels, out_channels, 3, relu=False)
        self.se = SEBlock(out_channels, reduction)
        self.projection = (ConvBN(in_channels, out_channels, 1, stride=stride, relu=False)
                           if in_channels != out_channels or stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.projection is None else self.projection(x)
        return F.relu(self.se(self.conv2(self.conv1(x))) + shortcut)


class Hourglass(nn.Module):
    """Newell et al.'s recursive hourglass of ``depth`` levels at ``channels`` channels, one residual
    block per slot: ``skip`` at this resolution; ``down`` after a 2×2 max-pool; the next level (or,
    at the bottom, ``inner``); ``up`` after it; nearest-neighbour 2× upsampling added to ``skip``.
    Input and output have the same shape; the input side must be divisible by 2**depth."""

    def __init__(self, depth: int, channels: int, block=SEResBlock):
        super().__init__()
        if depth < 1:
            raise ValueError(f"hourglass depth must be at least 1, got {depth}")
        self.depth = depth
        self.skip = block(channels, channels)
        self.down = block(channels, channels)
        self.inner = Hourglass(depth - 1, channels, block) if depth > 1 else block(channels, channels)
        self.up = block(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % (1 << self.depth) or x.shape[-2] % (1 << self.depth):
            raise ValueError(f"hourglass of depth {self.depth} needs sides divisible by {1 << self.depth}, "
                             f"got {tuple(x.shape[-2:])}")
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return self.skip(x) + F.interpolate(low, scale_factor=2.0, mode="nearest")

    def resolutions(self, side: int) -> list[int]:
        """The side of the feature map at each level, from ``side`` down to the innermost block's."""
        return [side >> level for level in range(self.depth + 1)]
