"""Learnable joint groups (Li, Gao, Sang, AAAI 2021), adapted to one depth channel.

The paper estimates 3D hand pose from one **RGB** image and publishes no depth results and no ablation
table: everything trained here is the book's own study of its idea on depth crops. The network follows the
released code (``moranli-aca/LearnableGroups-Hand``, ``nets/Net.py``, ``nets/Block_lib.py``,
``nets/Backbone.py``; config ``Learnable_Groups([3, True], 256, 21, [32, 32])``) layer by layer:

1. **Backbone** (Ge et al.'s ``Net_HG``, one stack): 7×7 stride-2 conv → pre-activation bottleneck
   residuals (64 → 128, 2×2 max-pool, 128 → 128, 128 → ``width``) → one hourglass of depth 4 with two
   residuals per slot → two residuals → 1×1 conv-BN-ReLU (the encoding T0) → 1×1 conv to J heat maps.
   Maps are S/4 on a side (32 × 32 for a 128 × 128 crop).
2. ``backbone_conv``: concat(heat maps, T0) → two residual blocks (conv3×3-BN-ReLU-conv3×3-BN + shortcut,
   ReLU) down to ``branch`` channels.
3. **Per group** a small U-net (1×1 conv, residual block, two strided residual downsamplings, two 4×4
   transposed-conv upsamplings with skips) → ``branch`` channels at S/4.
4. **Fusion** (NDDR-CNN): concat of the G groups' features → per group its own 1×1 conv + BN + ReLU,
   initialised 0.9·I on its own group's channels and 0.1/(G − 1)·I on every other group's.
5. **3D recovery** per group: a heat-map head and a depth-map head (conv3×3-ReLU-conv3×3 to J maps each);
   soft-argmax of softmax(β_j · map_j) gives (u, v); z is the same softmax's weighted sum of the depth map.
6. **Selector**: logits θ (J × G, initialised to 0.5 everywhere as the code: a uniform categorical). Each
   training step draws one relaxed one-hot (Gumbel-softmax, Concrete) sample S (J × G), shared by the whole
   batch; joint j's output is Σ_g S[j, g] · output_g[j].

What the code does not give, and what is chosen here (the choices are ours):

* **Loss** (the code has no training script): L1 on the soft-argmax (u, v) (crop pixels over half the crop)
  and on z (the normalised depth, (z − z_com) / (cube / 2), as the other chapters), plus λ = 0.1 times the
  per-map squared error of the backbone's heat maps against σ = 1-cell Gaussians (``heatmap_weight``; 0
  switches it off).
* **Temperature**: τ(t) = max(τ_min, τ0 · exp(−r t)), τ0 = 1 (Jang et al.'s schedule), r chosen so that τ
  reaches τ_min (0.1 here; ``tau_min``) after ``anneal_steps`` training steps (the profiles set it to about
  two thirds of the run). t counts the network's own training forward passes in a buffer (``step``), which
  the checkpoint stores, and the Gumbel noise of step t is drawn from a generator keyed by the run's seed and
  t: a resumed run draws exactly the samples an uninterrupted one does, every DDP process draws the same
  sample, and variants of one seed draw the same noise.
* **Test time**: the hard argmax of θ (a deterministic one-hot per joint). The released evaluation script
  instead samples S at the stored temperature (seed 60) for every batch: :func:`stochastic_infer`
  reproduces it for comparison.
* **β** (the per-joint softmax scale): the code keeps PyTorch's default init of a 1×1 depthwise conv, which
  for fan-in 1 is U(−1, 1), so some joints start with a *negative* scale (their soft-argmax then follows the
  map's minimum). Here β starts at +1 for every joint.
* **Map cells to crop pixels**: the code maps 64-grid index i to crop pixel 4i; here cell i is crop pixel
  (i + ½)·S/H − ½ (its centre, as the heat-map targets of :func:`handlib.losses.gaussian_heatmap_targets`),
  so no constant offset has to be learnt.
* **Depth adaptation**: a 1-channel stem, 128 × 128 crops (32 × 32 maps), NYU's 14 joints; the (u, v, z)
  are back-projected with the crop and camera as in the Liu et al. chapter, so the same metrics apply.

Layers whose conv bias is followed by BatchNorm drop that bias (:class:`handlib.models.blocks.ConvBN`): BN
subtracts it again, so the function is the same and only the parameter count is smaller (see
:data:`COST_NOTE`). Every layer is initialised as PyTorch's default, drawn from a generator keyed by the seed
and the layer's name (:func:`init_weights`), so variants of one seed start their shared layers alike.

Variants (the ablation, ours): G ∈ {1, 2, 3, 4} learned (G = 3 is the released configuration), G = 3 without
fusion, G = 3 with a fixed hand-crafted grouping (:func:`hand_crafted_groups`) and with a fixed random one
(:func:`random_groups`). A fixed grouping (and G = 1) has no trainable θ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from handlib.dataset_registry import convention_camera
from handlib.geometry import Camera, get_camera, normalize_joints
from handlib.joints import JointConvention, get_convention
from handlib.losses import gaussian_heatmap_targets
from handlib.models.blocks import ConvBN, Hourglass, fuse_batchnorm, named_generator
from handlib.models.liu import joints_from_2d, torch_default_init
from handlib.models.registry import ModelSpec, register_model
from handlib.recipe import Recipe

INPUT_SIZE = 128            # the depth adaptation's crop (the code: 256 × 256 RGB)
WIDTH = 256                 # hourglass channels (the code's num_feats)
BRANCH = 32                 # per-group channels (the code's planes = [32, 32])
HOURGLASS_DEPTH = 4
MAP_STRIDE = 4              # maps are S / 4 on a side
GROUPS = 3                  # the released configuration
THETA_INIT = 0.5            # the code: nn.init.constant_(meta_S.weight, 0.5)
BETA_INIT = 1.0             # ours: positive for every joint (the code's default init can be negative)
FUSION_SELF, FUSION_OTHERS = 0.9, 0.1   # nddr_layer init_weights
TAU_START = 1.0
TAU_MIN = 0.1
ANNEAL_STEPS = 1_000        # default when no profile sets it (summary, bench, tests)
HEATMAP_SIGMA = 1.0         # map cells (2 cells of the code's 64 grid = 1 cell of ours, relative to the crop)
HEATMAP_WEIGHT = 0.1        # λ: a zero map costs πσ² ≈ 3.1 per joint, so λ·3.1 is about the L1 terms' start
TRACE_POINTS = 13          # θ kept at steps k · anneal_steps / 8, k = 0..12 (τ reaches τ_min at k = 8)
RELEASED_TEST_SEED = 60     # eval_RHD.py seeds its stochastic test-time sampling with 60
RANDOM_GROUPING_SEED = 2021  # the random fixed grouping: one constant draw, the same for every run seed
SELECTORS = ("learned", "hand", "random")

COST_NOTE = """Measured (``python -m handlib summary joint_groups``) beside the spec's sketch, which followed the
released code. Depth, 1 × 128 × 128, 14 joints, G = 3: 7.439 M parameters and 2.768 GMAC here, against
7.46 M and 2.77 G. Released RHD configuration (``build(in_channels=3, image_size=256, convention="full")``,
21 joints): 7.468 M and 11.267 GMAC, against 7.50 M and 11.27 G. The code's own network counts 7,502,833
parameters at the RHD configuration (7,455,190 adapted to depth); the difference from ours is exact:
24,576 (depth: 6,144) are the soft-argmax coordinate grids the code stores as frozen ``nn.Parameter``s
(``SoftHeatmap.wx`` / ``wy``, two 64 × 64 grids per group; buffers of no weight here), and 10,208 are the
conv biases followed by BatchNorm, dropped here (BN subtracts them: the same function). MACs agree (biases
are additions, not multiply-accumulates). G = 2 / 4 and no fusion: 7.277 / 7.603 / 7.429 M and 2.667 /
2.871 / 2.758 GMAC at 128 × 128 depth."""

# variant id -> (label, G, fusion, selector)
VARIANT_TABLE = {
    "g1": ("G = 1, one branch (ours)", 1, False, "learned"),
    "g2": ("G = 2, learned groups (ours)", 2, True, "learned"),
    "g3": ("G = 3, learned groups (released configuration)", 3, True, "learned"),
    "g4": ("G = 4, learned groups (ours)", 4, True, "learned"),
    "g3_no_fusion": ("G = 3, learned groups, no fusion (ours)", 3, False, "learned"),
    "g3_hand": ("G = 3, hand-crafted groups (ours)", 3, True, "hand"),
    "g3_random": ("G = 3, random fixed groups (ours)", 3, True, "random"),
}
VARIANTS = {key: row[0] for key, row in VARIANT_TABLE.items()}
DEFAULT_VARIANT = "g3"


# --- building blocks -------------------------------------------------------------------------------

class PreActResidual(nn.Module):
    """Newell's residual module as in Ge et al.'s ``_Residual_Module``: BN-ReLU-1×1 (C/2)-BN-ReLU-3×3 (C/2)
    -BN-ReLU-1×1 (C), plus the input (a 1×1 conv with bias when the channel count changes). The two inner
    convs and their BNs are :class:`ConvBN` units (bias dropped: BN follows)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.reduce = ConvBN(in_channels, out_channels // 2, 1)
        self.spatial = ConvBN(out_channels // 2, out_channels // 2, 3)
        self.expand = nn.Conv2d(out_channels // 2, out_channels, 1)
        self.projection = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(self.spatial(self.reduce(F.relu(self.bn(x)))))
        return out + (x if self.projection is None else self.projection(x))


def two_residuals(in_channels: int, out_channels: int) -> nn.Sequential:
    """One hourglass slot of the code (``nModules = 2``): two residual modules in a row."""
    return nn.Sequential(PreActResidual(in_channels, out_channels), PreActResidual(out_channels, out_channels))


class ResBlock(nn.Module):
    """The code's ``Res2DBlock``: conv3×3-BN-ReLU-conv3×3-BN plus the shortcut (1×1 conv + BN when the channel
    count changes), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvBN(in_channels, out_channels, 3)
        self.conv2 = ConvBN(out_channels, out_channels, 3, relu=False)
        self.projection = ConvBN(in_channels, out_channels, 1, relu=False) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.projection is None else self.projection(x)
        return F.relu(self.conv2(self.conv1(x)) + shortcut)


class DownBlock(nn.Module):
    """The code's ``DownsampleConv2D_R``: conv3×3/2-BN-ReLU-conv3×3-BN-ReLU plus a 1×1/2 conv + BN shortcut,
    then ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = ConvBN(in_channels, out_channels, 3, stride=2)
        self.conv2 = ConvBN(out_channels, out_channels, 3)
        self.projection = ConvBN(in_channels, out_channels, 1, stride=2, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.projection(x))


class UpBlock(nn.Module):
    """The code's ``Upsample2DBlock_R``: 4×4 stride-2 transposed conv (padding 1: exactly 2× the side) + BN +
    ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Backbone(nn.Module):
    """Ge et al.'s one-stack ``Net_HG``: (B, C, S, S) → (heat maps (B, J, S/4, S/4), encoding (B, width,
    S/4, S/4))."""

    def __init__(self, in_channels: int, num_joints: int, width: int = WIDTH, depth: int = HOURGLASS_DEPTH):
        super().__init__()
        self.stem = ConvBN(in_channels, width // 4, 7, stride=2)
        self.r1 = PreActResidual(width // 4, width // 2)
        self.r4 = PreActResidual(width // 2, width // 2)
        self.r5 = PreActResidual(width // 2, width)
        self.hourglass = Hourglass(depth, width, block=two_residuals)
        self.residuals = two_residuals(width, width)
        self.lin = ConvBN(width, width, 1)
        self.heatmaps = nn.Conv2d(width, num_joints, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.r5(self.r4(F.max_pool2d(self.r1(self.stem(x)), 2)))
        encoding = self.lin(self.residuals(self.hourglass(x)))
        return self.heatmaps(encoding), encoding


class GroupBranch(nn.Module):
    """One group's sub-network, the code's small U-net on the shared features (C = ``channels``):
    1×1 conv → residual → two strided downsamplings → transposed conv up, concat with the first down's
    output, 1×1 conv, transposed conv up → concat(up, residual output, 1×1 output) → 1×1 conv (2C) →
    residual block (C)."""

    def __init__(self, channels: int = BRANCH):
        super().__init__()
        c = channels
        self.conv0 = ConvBN(c, c, 1)
        self.conv1 = ResBlock(c, c)
        self.down1 = DownBlock(c, c)
        self.down2 = DownBlock(c, c)
        self.up2 = UpBlock(c, c)
        self.up1 = nn.Sequential(ConvBN(2 * c, c, 1), UpBlock(c, c))
        self.up0 = nn.Sequential(ConvBN(3 * c, 2 * c, 1), ResBlock(2 * c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bf0 = self.conv0(x)
        bf1 = self.conv1(bf0)
        bf2 = self.down1(bf1)
        up = self.up1(torch.cat([self.up2(self.down2(bf2)), bf2], 1))
        return self.up0(torch.cat([up, bf1, bf0], 1))


class Fusion(nn.Module):
    """NDDR-style fusion: concat of the G groups' C-channel features → per group a 1×1 conv (G·C → C) + BN +
    ReLU; :meth:`reset_pattern` sets the code's initial weights (0.9·I on the group's own channels,
    0.1/(G − 1)·I on each other group's, 0 elsewhere)."""

    def __init__(self, groups: int, channels: int = BRANCH):
        super().__init__()
        if groups < 2:
            raise ValueError(f"fusion needs at least 2 groups, got {groups} (the code asserts it too)")
        self.groups, self.channels = groups, channels
        self.convs = nn.ModuleList(ConvBN(groups * channels, channels, 1) for _ in range(groups))

    @torch.no_grad()
    def reset_pattern(self) -> None:
        c, g_count = self.channels, self.groups
        eye = torch.eye(c)
        for g, unit in enumerate(self.convs):
            weight = torch.zeros(c, g_count * c)
            for h in range(g_count):
                weight[:, h * c:(h + 1) * c] = eye * (FUSION_SELF if h == g else FUSION_OTHERS / (g_count - 1))
            unit.conv.weight.copy_(weight.reshape(c, g_count * c, 1, 1))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        stacked = torch.cat(features, 1)
        return [unit(stacked) for unit in self.convs]


def map_head(channels: int, num_joints: int) -> nn.Sequential:
    """The code's heat-map / depth-map head: conv3×3 (C → C) → ReLU → conv3×3 → J maps (C = the branch's)."""
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(channels, num_joints, 3, padding=1))


def soft_argmax(heatmaps: torch.Tensor, beta: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, J, H, W) maps → ((B, J, 2) expected (x, y) in map cells, (B, J, H, W) the softmax over each map).

    The softmax is of β_j · map_j (``beta`` (J,), default 1), in float32 even under autocast."""
    b, j, h, w = heatmaps.shape
    maps = heatmaps.float()
    if beta is not None:
        maps = maps * beta.float().reshape(1, j, 1, 1)
    prob = torch.softmax(maps.reshape(b, j, h * w), dim=-1).reshape(b, j, h, w)
    xs = torch.arange(w, dtype=prob.dtype, device=prob.device)
    ys = torch.arange(h, dtype=prob.dtype, device=prob.device)
    x = (prob.sum(-2) * xs).sum(-1)
    y = (prob.sum(-1) * ys).sum(-1)
    return torch.stack((x, y), dim=-1), prob


def cells_to_crop(cells: torch.Tensor, image_size: int, map_size: int) -> torch.Tensor:
    """Map cells → crop pixels, cell i at its centre (i + ½)·S/H − ½ (the heat-map targets' convention)."""
    return (cells + 0.5) * (image_size / map_size) - 0.5


class Recovery(nn.Module):
    """One group's 3D recovery: heat-map and depth-map heads; (u, v) by soft-argmax of softmax(β ⊙ maps),
    z = Σ softmax ⊙ depth map."""

    def __init__(self, channels: int, num_joints: int):
        super().__init__()
        self.heatmaps = map_head(channels, num_joints)
        self.depthmaps = map_head(channels, num_joints)
        self.beta = nn.Parameter(torch.full((num_joints,), BETA_INIT))

    def forward(self, features: torch.Tensor):
        heatmaps, depthmaps = self.heatmaps(features), self.depthmaps(features)
        cells, prob = soft_argmax(heatmaps, self.beta)
        z = (prob * depthmaps.float()).sum((-2, -1))
        return cells, z, heatmaps, depthmaps


# --- the selector ------------------------------------------------------------------------------------

def gumbel_noise(shape, generator: torch.Generator) -> torch.Tensor:
    """Standard Gumbel noise −log(−log U), U uniform in (0, 1), from ``generator`` (CPU, float32)."""
    u = torch.rand(shape, generator=generator).clamp(1e-10, 1 - 1e-7)
    return -torch.log(-torch.log(u))


def relaxed_one_hot(logits: torch.Tensor, temperature: float, noise: torch.Tensor) -> torch.Tensor:
    """Gumbel-softmax (Concrete) sample: softmax((logits + noise) / τ) along the groups (last axis): rows sum
    to 1, one-hot as τ → 0; its gradient reaches ``logits`` (the reparameterisation of RelaxedOneHotCategorical)."""
    return torch.softmax((logits.float() + noise.to(logits.device)) / temperature, dim=-1)


def temperature_at(step: int, anneal_steps: int, tau_min: float = TAU_MIN, tau_start: float = TAU_START) -> float:
    """τ(t) = max(τ_min, τ0 · exp(−r t)), with r = ln(τ0 / τ_min) / ``anneal_steps``: τ0 at step 0, τ_min from
    step ``anneal_steps`` on."""
    if anneal_steps < 1:
        raise ValueError(f"anneal_steps must be at least 1, got {anneal_steps}")
    rate = math.log(tau_start / tau_min) / anneal_steps
    return max(tau_min, tau_start * math.exp(-rate * step))


def _digit(name: str) -> str:
    """Which digit a joint belongs to, from its name in any convention of :mod:`handlib.joints`, or "palm"."""
    lower = name.lower()
    if lower.startswith(("palm", "wrist", "w_", "c_")) or lower == "w":
        return "palm"
    return {"t": "thumb", "i": "index", "m": "middle", "r": "ring", "p": "little", "l": "little"}[lower[0]]


HAND_GROUPS = (("thumb",), ("index", "middle"), ("ring", "little"))
PALM_CHOICES = ("side", "thumb", "index_middle", "ring_little")
_RADIAL_WRIST, _ULNAR_WRIST = 22, 21      # canonical W_rad / W_uln (handlib.joints.EXTRA_LANDMARKS)


def hand_crafted_groups(convention: str | JointConvention = "nyu", palm: str = "side") -> tuple[int, ...]:
    """Group of each joint (in the convention's order) for the fixed hand-crafted grouping: 0 = thumb,
    1 = index + middle, 2 = ring + little.

    Digit joints go to their digit's group. The palm joints belong to no digit; ``palm`` says where they go:
    ``"side"`` (default) by the side of the hand they sit on: the radial wrist point (NYU's Wrist1, on the
    thumb's side) with the thumb, the ulnar one (Wrist2, the little finger's side) with ring + little, and a
    central palm or wrist point (NYU's Palm, ICVL's Palm, MSRA's Wrist) with index + middle, the middle of the
    hand; or the name of one group, which then takes every palm joint. For NYU's 14 joints "side" gives thumb
    {Thumb.T, Thumb.R2, Thumb.R1, Wrist1}, index + middle {Mid.T, Mid.R, Index.T, Index.R, Palm}, ring +
    little {Pinky.T, Pinky.R, Ring.T, Ring.R, Wrist2}."""
    if palm not in PALM_CHOICES:
        raise ValueError(f"palm={palm!r}: expected one of {PALM_CHOICES}")
    conv = get_convention(convention) if isinstance(convention, str) else convention
    digit_group = {d: g for g, digits in enumerate(HAND_GROUPS) for d in digits}
    groups = []
    for name, canonical in zip(conv.joint_names, conv.from_canonical):
        digit = _digit(name)
        if digit != "palm":
            groups.append(digit_group[digit])
        elif palm != "side":
            groups.append(PALM_CHOICES.index(palm) - 1)
        else:
            groups.append({_RADIAL_WRIST: 0, _ULNAR_WRIST: 2}.get(canonical, 1))
    return tuple(groups)


def random_groups(num_joints: int, sizes: tuple[int, ...], seed: int = RANDOM_GROUPING_SEED) -> tuple[int, ...]:
    """A fixed random grouping with the given group sizes (those of the hand-crafted grouping, so that only
    which joints share a group differs): a random permutation of the joints from ``seed`` cut into groups."""
    if sum(sizes) != num_joints:
        raise ValueError(f"group sizes {sizes} do not add up to {num_joints} joints")
    order = torch.randperm(num_joints, generator=torch.Generator().manual_seed(seed)).tolist()
    groups = [0] * num_joints
    start = 0
    for g, size in enumerate(sizes):
        for j in order[start:start + size]:
            groups[j] = g
        start += size
    return tuple(groups)


def grouping_agreement(a, b) -> float:
    """The share of joint pairs on which two groupings agree (both put the pair in one group, or both
    apart): the Rand index, blind to how the groups are numbered. 1 for the same partition."""
    a, b = torch.as_tensor(a).reshape(-1), torch.as_tensor(b).reshape(-1)
    if a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"grouping_agreement: two groupings of the same joints (at least 2) expected, "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    same_a, same_b = a[:, None] == a[None, :], b[:, None] == b[None, :]
    pairs = torch.triu(torch.ones_like(same_a), diagonal=1)
    return float((same_a == same_b)[pairs].float().mean())


# --- the network -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    groups: int
    fusion: bool
    selector: str          # learned | hand | random


def variant_config(variant: str) -> Config:
    if variant not in VARIANT_TABLE:
        raise ValueError(f"unknown joint-groups variant {variant!r}; expected one of {list(VARIANT_TABLE)}")
    _, groups, fusion, selector = VARIANT_TABLE[variant]
    return Config(groups, fusion, selector)


class JointGroupsNet(nn.Module):
    """(B, C, S, S) crop → dict: ``uv`` (B, J, 2) crop pixels, ``z`` (B, J) normalised depth (the selected
    groups' outputs summed with the selection's weights), ``heatmaps0`` (B, J, S/4, S/4) backbone maps,
    ``group_uv`` (B, G, J, 2), ``group_z`` (B, G, J), ``selection`` (J, G), ``heatmap_weight`` (the loss's λ)
    and, in training, ``temperature``. Buffers: ``step`` (training steps taken), ``noise_seed``, and
    ``theta_trace`` (θ before the steps ``trace_steps``, NaN until reached; learned variants). ``return_features`` adds ``features``: ``encoding``, ``shared``
    (backbone_conv output), ``branches`` and ``fused`` (lists per group), ``group_heatmaps`` and
    ``group_depthmaps`` (B, G, J, S/4, S/4)."""

    def __init__(self, variant: str = DEFAULT_VARIANT, convention: str | JointConvention = "nyu",
                 image_size: int = INPUT_SIZE, width: int = WIDTH, branch: int = BRANCH,
                 anneal_steps: int = ANNEAL_STEPS, tau_min: float = TAU_MIN,
                 heatmap_weight: float = HEATMAP_WEIGHT, in_channels: int = 1, palm: str = "side"):
        super().__init__()
        config = variant_config(variant)
        if image_size % (MAP_STRIDE << HOURGLASS_DEPTH):
            raise ValueError(f"image_size {image_size} must be divisible by {MAP_STRIDE << HOURGLASS_DEPTH} "
                             f"(S/4 maps into a depth-{HOURGLASS_DEPTH} hourglass)")
        if image_size % (MAP_STRIDE * 4):
            raise ValueError(f"image_size {image_size}: the group U-nets halve S/4 twice")
        if width < 16 or width % 4:
            raise ValueError(f"width must be a multiple of 4, at least 16; got {width}")
        temperature_at(0, anneal_steps, tau_min)          # validates the schedule
        self.variant, self.config = variant, config
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.camera: Camera = get_camera(convention_camera(self.convention.name))
        self.image_size, self.width, self.branch = image_size, width, branch
        self.anneal_steps, self.tau_min, self.heatmap_weight = anneal_steps, tau_min, heatmap_weight
        joints = self.convention.num_joints
        self.backbone = Backbone(in_channels, joints, width)
        self.backbone_conv = nn.Sequential(ResBlock(width + joints, width // 2), ResBlock(width // 2, branch))
        self.branches = nn.ModuleList(GroupBranch(branch) for _ in range(config.groups))
        self.fusion = Fusion(config.groups, branch) if config.fusion else None
        self.recovery = nn.ModuleList(Recovery(branch, joints) for _ in range(config.groups))
        learned = config.selector == "learned" and config.groups > 1
        # θ: the code's bias-free Linear(G, J) weight, J × G; trainable only where the groups are learned.
        self.theta = nn.Parameter(torch.full((joints, config.groups), THETA_INIT), requires_grad=learned)
        if config.selector == "hand":
            fixed = hand_crafted_groups(self.convention, palm)
        elif config.selector == "random":
            fixed = random_groups(joints, _group_sizes(hand_crafted_groups(self.convention, palm), config.groups))
        else:
            fixed = (0,) * joints                          # G = 1: every joint in the one group
        self.register_buffer("fixed_groups", torch.tensor(fixed, dtype=torch.long))
        self.learned = learned
        self.register_buffer("step", torch.zeros((), dtype=torch.long))          # training steps taken
        self.register_buffer("noise_seed", torch.tensor(torch.initial_seed() % 2**62, dtype=torch.long))
        # θ as it was at TRACE_POINTS steps of training (NaN until reached), kept in the checkpoints: the
        # groups the network had learnt at each point, without another run.
        self.register_buffer("trace_steps", torch.tensor([round(k * anneal_steps / 8) for k in range(TRACE_POINTS)]))
        self.register_buffer("theta_trace", torch.full((TRACE_POINTS, joints, config.groups), math.nan))

    # the selector
    def temperature(self, step: int | None = None) -> float:
        return temperature_at(int(self.step) if step is None else step, self.anneal_steps, self.tau_min)

    def groups(self) -> torch.Tensor:
        """(J,) the group each joint is read from at test time: argmax of θ (learned), else the fixed grouping."""
        return self.theta.detach().argmax(-1) if self.learned else self.fixed_groups

    def hard_selection(self) -> torch.Tensor:
        """(J, G) one-hot of :meth:`groups`: the test-time selection."""
        return F.one_hot(self.groups(), self.config.groups).float()

    def sample_selection(self, step: int) -> torch.Tensor:
        """(J, G) the relaxed one-hot sample of training step ``step``: noise from (run seed, step), τ(step)."""
        generator = named_generator(int(self.noise_seed), f"selector:{step}")
        return relaxed_one_hot(self.theta, self.temperature(step), gumbel_noise(self.theta.shape, generator))

    def forward(self, depth: torch.Tensor, selection: torch.Tensor | None = None,
                return_features: bool = False) -> dict:
        expected = (self.backbone.stem.conv.in_channels, self.image_size, self.image_size)
        if depth.dim() != 4 or tuple(depth.shape[1:]) != expected:
            raise ValueError(f"joint-groups network expects input of shape (B, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}), got {tuple(depth.shape)}")
        out: dict = {"heatmap_weight": self.heatmap_weight}
        if selection is None:
            if self.training and self.learned:
                out["temperature"] = self.temperature()
                with torch.no_grad():
                    self.theta_trace[self.trace_steps == self.step] = self.theta.detach().float()
                selection = self.sample_selection(int(self.step))
                self.step += 1
            else:
                selection = self.hard_selection()
        heatmaps0, encoding = self.backbone(depth)
        shared = self.backbone_conv(torch.cat([heatmaps0, encoding], 1))
        branches = [branch(shared) for branch in self.branches]
        fused = self.fusion(branches) if self.fusion is not None else branches
        recovered = [head(f) for head, f in zip(self.recovery, fused)]
        map_size = heatmaps0.shape[-1]
        group_uv = cells_to_crop(torch.stack([r[0] for r in recovered], 1), self.image_size, map_size)
        group_z = torch.stack([r[1] for r in recovered], 1)
        weights = selection.to(group_z.device, torch.float32).t()           # (G, J)
        out.update(heatmaps0=heatmaps0, group_uv=group_uv, group_z=group_z, selection=selection,
                   uv=(group_uv * weights.unsqueeze(-1)).sum(1), z=(group_z * weights).sum(1))
        if return_features:
            out["features"] = {
                "encoding": encoding, "shared": shared, "branches": branches, "fused": fused,
                "group_heatmaps": torch.stack([r[2] for r in recovered], 1),
                "group_depthmaps": torch.stack([r[3] for r in recovered], 1)}
        return out

    def fuse_for_inference(self) -> "JointGroupsNet":
        """Eval mode, every conv + BN unit folded (same outputs to float rounding). Irreversible."""
        return fuse_batchnorm(self)


def _group_sizes(groups: tuple[int, ...], count: int) -> tuple[int, ...]:
    return tuple(sum(1 for g in groups if g == k) for k in range(count))


def init_weights(net: JointGroupsNet, seed: int | None = None) -> None:
    """PyTorch's default init (the code's: it sets no other except below), each layer drawn from a generator
    keyed by (seed, layer name): :func:`handlib.models.liu.torch_default_init` for convs and linears, the same
    draw for the transposed convs; then the code's fusion pattern, θ = 0.5 and (ours) β = +1 and the backbone's
    heat-map output conv at zero: from PyTorch's default init its maps cost 15 to 50 times the targets' own
    energy under L_hm (measured at 64 and 128 px), and the first steps would go to shrinking them (the Liu et
    al. chapter's choice, for the same reason); from zero they cost exactly the targets' energy."""
    base = torch.initial_seed() if seed is None else seed
    torch_default_init(net, base)
    with torch.no_grad():
        for name, module in net.named_modules():
            if isinstance(module, nn.ConvTranspose2d):
                bound = 1 / math.sqrt(module.weight[0].numel())       # PyTorch's fan-in of a transposed conv
                module.weight.uniform_(-bound, bound, generator=named_generator(base, name))
        if net.fusion is not None:
            net.fusion.reset_pattern()
        net.theta.fill_(THETA_INIT)
        net.backbone.heatmaps.weight.zero_()
        net.backbone.heatmaps.bias.zero_()
        for head in net.recovery:
            head.beta.fill_(BETA_INIT)


def build(variant: str = DEFAULT_VARIANT, convention: str | JointConvention = "nyu",
          image_size: int = INPUT_SIZE, width: int = WIDTH, branch: int = BRANCH,
          anneal_steps: int = ANNEAL_STEPS, tau_min: float = TAU_MIN,
          heatmap_weight: float = HEATMAP_WEIGHT, in_channels: int = 1) -> JointGroupsNet:
    """The network of ``variant``; ``width`` (hourglass channels, the code's 256), ``branch`` (per-group
    channels, 32), ``anneal_steps``, ``tau_min`` and ``heatmap_weight`` are profile settings of those names.
    ``in_channels=3`` with 256 px and the "full" (21-joint) convention is the released RGB configuration."""
    net = JointGroupsNet(variant, convention, image_size, width, branch, anneal_steps, tau_min,
                         heatmap_weight, in_channels)
    init_weights(net)
    return net


# --- the training graph, losses and predictions ------------------------------------------------------

def forward(net: JointGroupsNet, batch: dict, selection: torch.Tensor | None = None) -> dict:
    """The network's outputs; in eval mode with crop geometry also ``joints_norm``, the (u, v, z) back-
    projected through the inverse crop and the camera and normalised by the crop's centre and cube (what the
    loop scores)."""
    out = net(batch["depth"], selection=selection)
    if net.training or "transform" not in batch:    # training needs the raw outputs; a bare input has no crop
        return out
    xyz = joints_from_2d(out["uv"], out["z"], batch, net.camera)
    out["joints_norm"] = normalize_joints(xyz, batch["com"].double(), batch["cube"].double()).float()
    return out


def stochastic_infer(seed: int = RELEASED_TEST_SEED, temperature: float | None = None):
    """The released evaluation: a test-time ``forward`` that draws a new relaxed one-hot sample for every
    batch it is called on, from a generator seeded once with ``seed`` (the script's 60), at ``temperature``
    (default: the network's final τ_min). For comparison with the hard argmax this book uses; a fixed
    grouping ignores it."""
    generator = torch.Generator().manual_seed(seed)

    def infer(net: JointGroupsNet, batch: dict) -> dict:
        if not net.learned:
            return forward(net, batch)
        tau = net.tau_min if temperature is None else temperature
        sample = relaxed_one_hot(net.theta.detach(), tau, gumbel_noise(net.theta.shape, generator))
        return forward(net, batch, selection=sample)

    return infer


def loss(outputs: dict, batch: dict) -> dict:
    """Ours (the code has no training script): L_uv = mean over joints of |Δu| + |Δv| in crop pixels over half
    the crop; L_z = mean |Δz| of the normalised depth; L_hm = λ · mean over joints of Σ_pixels (h − t)² of
    the backbone's heat maps against σ = 1-cell Gaussians (absent when λ = 0). Batch means."""
    half = batch["depth"].shape[-1] / 2
    target = batch["joints_crop"].float()
    terms = {"L_uv": ((outputs["uv"].float() - target[..., :2]).abs().sum(-1) / half).mean(),
             "L_z": (outputs["z"].float() - target[..., 2]).abs().mean()}
    total = terms["L_uv"] + terms["L_z"]
    weight = outputs.get("heatmap_weight", HEATMAP_WEIGHT)
    if weight:
        maps = outputs["heatmaps0"].float()
        targets = gaussian_heatmap_targets(batch["joints_crop"], batch["depth"].shape[-1], maps.shape[-1],
                                           HEATMAP_SIGMA)
        terms["L_hm"] = weight * (maps - targets).pow(2).sum((-2, -1)).mean()
        total = total + terms["L_hm"]
    terms["total"] = total
    return terms


def predict(outputs: dict) -> torch.Tensor:
    """(B, J, 3) joints normalised by the crop's centre and cube."""
    return outputs["joints_norm"]


# Ours (the paper's training is not released): Adam 1e-3 with a step decay (x 0.1 after 40 and 50 of 60
# epochs), batch 32, no weight decay.
RECIPE = Recipe(optimizer="adam", lr=1e-3, epochs=60, batch_size=32, schedule="step", gamma=0.1,
                milestones=(40, 50))

SPEC = register_model(ModelSpec(
    name="joint_groups",
    paper="Li, Gao, Sang. Exploiting learnable joint groups for hand pose estimation. AAAI 2021 "
          "(RGB in the paper; adapted to depth here)",
    chapter="joint_groups",
    variants=VARIANTS,
    default_variant=DEFAULT_VARIANT,
    build=build,
    loss=loss,
    predict=predict,
    recipe=RECIPE,
    convention="nyu",
    input_size=INPUT_SIZE,
    forward=forward,
    build_settings=("width", "branch", "anneal_steps", "tau_min", "heatmap_weight"),
))
