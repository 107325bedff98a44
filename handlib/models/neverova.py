"""Neverova, Wolf, Nebout, Taylor: hand pose estimation through semi-supervised and weakly-supervised
learning (CVIU 2017). No code was released; the paper's Table 1 is the architecture, and every choice
below is named where it is made.

Two registered models, one chapter (``neverova``):

``neverova_seg`` — the segmentation network f_s (variants: ``synthetic``, supervised on synthetic part
labels; ``weak``, fine-tuned from it on a 9:1 mix of synthetic frames and restored real-like frames):

* local contrast normalisation (kernel 9) of the crop;
* conv 32 × 5×5, conv 64 × 5×5, conv 128 × 5×5, the first two followed by the paper's "pooling over 2×2
  regions produced by shifting the feature maps by one pixel": a 2×2 max-pool of stride 1, which keeps
  full resolution, so the later convs are dilated (by 2 and 4) and the second pool too (*à trous*).
  :func:`shift_and_stitch` evaluates the ordinary pooled network on every shifted map and interleaves the
  results; it equals the dilated network (the tests check it);
* two per-pixel hidden layers of 500 (1×1 convs), then 20 parts (softmax over the 19 finger parts and
  the palm; background pixels are removed beforehand: they are not scored and have no target);
* every layer normalised over the pixels of its own image at training and at test time (instance
  normalisation with affine parameters: the paper's batch-1 BatchNorm).

``neverova_reg`` — the regression network f_r at 24×24 (Table 4's rows as variants):

===========================  ==================================================================
variant                      network
===========================  ==================================================================
direct                       (a) one network, depth only (no masked branch) → 14 × 3
cascade                      (b) (a) frozen, then per-joint networks on zoomed patches around its
                             estimate regress a correction (DeepPrior's refinement)
per_joint_synthetic          (c) one network per joint; the Inception branch c221 → c222 sees the
                             features masked by the joint's part(s), opened, from f_s trained on
                             synthetic labels only
per_joint_weak               (d) the same with the weakly supervised f_s
===========================  ==================================================================

Per-joint networks are computed side by side as grouped convolutions and a batched fully connected
layer: network j has its own weights and sees only its own input, exactly as 14 separate networks.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from handlib.data.crop import foreground_mask, uncrop_joints
from handlib.dataset_registry import convention_camera
from handlib.geometry import (Camera, denormalize_joints, get_camera, normalize_joints,
                              transform_points_2d, uvd_to_xyz, xyz_to_uvd)
from handlib.joints import JointConvention, get_convention
from handlib.models.blocks import named_generator
from handlib.models.registry import ModelSpec, Selection, Upstream, register_model
from handlib.recipe import Recipe

# --- part labels ------------------------------------------------------------------------------------

NUM_PARTS = 20                 # palm + 19 finger parts: the softmax's classes
BACKGROUND, PALM, ARM = 0, 1, 21   # renderer labels (handlib.synth.kinematics.PART_NAMES)
LABELS = NUM_PARTS + 1         # label maps: 0 = not hand, 1..20 = parts


def hand_labels(parts: torch.Tensor) -> torch.Tensor:
    """Renderer labels → the 20-part problem's label maps: 0 background, 1..20 parts, -1 unknown.

    The forearm (renderer label 21) joins the palm: the paper removes only the background before
    segmenting, so whatever of the forearm stays in the crop must take one of the 20 labels, and the
    palm is the part it joins in the image."""
    return torch.where(parts == ARM, torch.full_like(parts, PALM), parts)


# Which parts hold each canonical joint (``handlib.joints.CANONICAL_NAMES``; extra landmarks: palm).
# A joint between two bones belongs to both; a tip to its distal bone; the wrist and the palm landmarks
# to the palm.
def _canonical_parts() -> list[tuple[int, ...]]:
    thumb = [(PALM, 2), (2, 3), (3, 4), (4,)]                  # CMC, MCP, IP, TIP
    parts = [(PALM,)] + thumb
    for finger in range(4):                                     # index, middle, ring, little
        mc, pp, mp, dp = (5 + 4 * finger + k for k in range(4))
        parts += [(mc, pp), (pp, mp), (mp, dp), (dp,)]          # MCP, PIP, DIP, TIP
    return parts + [(PALM,)] * 4                                # W_uln, W_rad, C_nyu, C_icvl


CANONICAL_PARTS = tuple(_canonical_parts())


def joint_parts(convention: str | JointConvention = "nyu") -> tuple[tuple[int, ...], ...]:
    """The part labels (1..20) of each joint of ``convention``: NYU's Pinky.T → little DP (20),
    Pinky.R (PIP) → little PP and MP (18, 19), ..., Thumb.R1 (MCP) → thumb MC and PP, wrists and palm
    → palm."""
    conv = get_convention(convention) if isinstance(convention, str) else convention
    return tuple(CANONICAL_PARTS[i] for i in conv.from_canonical)


def joint_masks(labels: torch.Tensor, parts: tuple[tuple[int, ...], ...]) -> torch.Tensor:
    """(B, H, W) label maps → (B, J, H, W) float masks, 1 where the label is one of joint j's parts."""
    table = torch.zeros(len(parts), LABELS + 1, dtype=torch.bool, device=labels.device)
    for j, ps in enumerate(parts):
        table[j, list(ps)] = True
    index = labels.long().clamp(0, LABELS)          # -1 (unknown) and anything else: no part
    index = torch.where((labels >= 0) & (labels <= LABELS - 1), index, torch.full_like(index, LABELS))
    return table[:, index].permute(1, 0, 2, 3).float()


def opening(masks: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Morphological opening (erosion, then dilation) of (..., H, W) binary masks by a size × size
    square; outside the image counts as set for the erosion (the border does not erode a region)."""
    shape = masks.shape
    x = masks.reshape(-1, 1, *shape[-2:]).float()
    pad = size // 2
    eroded = -F.max_pool2d(-x, size, 1, pad)
    return F.max_pool2d(eroded, size, 1, pad).reshape(shape)


def local_masks(labels: torch.Tensor, parts, grid: int) -> torch.Tensor:
    """The regression network's local regions: each joint's part mask at the label map's resolution,
    opened (3×3), then reduced to the ``grid`` × ``grid`` feature grid (a cell is in the mask when any of
    its pixels is). (B, H, W) → (B, J, grid, grid)."""
    return F.adaptive_max_pool2d(opening(joint_masks(labels, parts)), grid)


# --- local contrast normalisation and resizing ------------------------------------------------------

LCN_KERNEL = 9
LCN_THRESHOLD = 1e-4        # Torch7's nn.SpatialContrastiveNormalization default


def local_contrast_norm(x: torch.Tensor, kernel: int = LCN_KERNEL, threshold: float = LCN_THRESHOLD) -> torch.Tensor:
    """Torch7's ``SpatialContrastiveNormalization`` with its default uniform kernel: subtract the local mean
    over a ``kernel`` × ``kernel`` window, then divide by the local standard deviation of the result
    (at least ``threshold``). At the border both are means over the part of the window inside the image.
    (B, 1, H, W) → (B, 1, H, W)."""
    weight = torch.ones(1, 1, kernel, kernel, dtype=x.dtype, device=x.device) / kernel ** 2
    pad = kernel // 2
    coverage = F.conv2d(torch.ones_like(x[:1, :1]), weight, padding=pad)
    centred = x - F.conv2d(x, weight, padding=pad) / coverage
    std = (F.conv2d(centred * centred, weight, padding=pad) / coverage).sqrt()
    return centred / std.clamp(min=threshold)


def resize_nearest(x: torch.Tensor, size: int) -> torch.Tensor:
    """(..., H, W) → (..., size, size) by taking every (H / size)-th pixel (labels and crops alike)."""
    if x.shape[-1] == size:
        return x
    if x.shape[-1] % size:
        raise ValueError(f"cannot sub-sample a {x.shape[-1]}-pixel map to {size} pixels")
    step = x.shape[-1] // size
    return x[..., ::step, ::step]


# --- the segmentation network f_s --------------------------------------------------------------------

SEG_SIZE = 48                   # the paper's segmentation resolution (its reported experiments)
FAST_SEG_SIZE = 24              # the paper's fast setting (24×24 segmentation, 31 ms per hand)
SEG_SETTINGS = {"paper": SEG_SIZE, "fast": FAST_SEG_SIZE}
SEG_CHANNELS = (32, 64, 128)
SEG_KERNEL = 5
HIDDEN = 500
NORM_EPS = 1e-5


def _pool_dense(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """2×2 max-pool of stride 1 (dilated), padded at the bottom / right: full resolution kept."""
    return F.max_pool2d(F.pad(x, (0, dilation, 0, dilation), value=-math.inf), 2, 1, dilation=dilation)


class SegNet(nn.Module):
    """f_s, dense: (B, 1, S, S) normalised crops → ``log_probs`` (B, 20, s, s) at ``seg_size`` s (the crop
    is first sub-sampled to s when larger). ``labels`` are argmax + 1 on the crop's foreground, 0 on its
    background."""

    def __init__(self, seg_size: int = SEG_SIZE, convention: str | JointConvention = "nyu",
                 seed: int | None = None):
        super().__init__()
        if seg_size % 4:
            raise ValueError(f"seg_size must be a multiple of 4 (two 2x2 poolings), got {seg_size}")
        self.seg_size = seg_size
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.camera: Camera = get_camera(convention_camera(self.convention.name))
        c1, c2, c3 = SEG_CHANNELS
        k, p = SEG_KERNEL, SEG_KERNEL // 2
        self.conv1 = nn.Conv2d(1, c1, k, padding=p, bias=False)
        self.conv2 = nn.Conv2d(c1, c2, k, padding=2 * p, dilation=2, bias=False)
        self.conv3 = nn.Conv2d(c2, c3, k, padding=4 * p, dilation=4, bias=False)
        self.hidden1 = nn.Conv2d(c3, HIDDEN, 1, bias=False)
        self.hidden2 = nn.Conv2d(HIDDEN, HIDDEN, 1, bias=False)
        self.out = nn.Conv2d(HIDDEN, NUM_PARTS, 1)
        self.norms = nn.ModuleList(nn.InstanceNorm2d(c, eps=NORM_EPS, affine=True)
                                   for c in (c1, c2, c3, HIDDEN, HIDDEN))
        init_weights(self, seed)

    def prepare(self, depth: torch.Tensor) -> torch.Tensor:
        """The crop at the segmentation's resolution, contrast-normalised."""
        return local_contrast_norm(resize_nearest(depth, self.seg_size))

    def forward(self, depth: torch.Tensor) -> dict:
        h = F.relu(self.norms[0](self.conv1(self.prepare(depth))))
        h = _pool_dense(h, 1)
        h = _pool_dense(F.relu(self.norms[1](self.conv2(h))), 2)
        h = F.relu(self.norms[2](self.conv3(h)))
        h = F.relu(self.norms[3](self.hidden1(h)))          # per pixel: two hidden layers, then 20 parts
        h = F.relu(self.norms[4](self.hidden2(h)))
        return {"log_probs": F.log_softmax(self.out(h).float(), dim=1)}

    def labels(self, log_probs: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """(B, s, s) label maps: the most likely part on the foreground, 0 on the background."""
        fg = foreground_mask(resize_nearest(depth[:, 0], self.seg_size))
        return torch.where(fg, log_probs.argmax(1) + 1, torch.zeros_like(fg, dtype=torch.long))


def _joint_norm(maps: dict, norm: nn.InstanceNorm2d) -> dict:
    """Instance normalisation whose statistics are taken over all maps of ``maps`` together (the
    shifted maps of one image are, together, every pixel of its dense map)."""
    flat = torch.cat([m.flatten(2) for m in maps.values()], dim=2)
    mean = flat.mean(2)[..., None, None]
    var = flat.var(2, unbiased=False)[..., None, None]
    scale = norm.weight[:, None, None] / torch.sqrt(var + norm.eps)
    return {k: F.relu((m - mean) * scale + norm.bias[:, None, None]) for k, m in maps.items()}


def _pool_shifts(maps: dict) -> dict:
    """Every map shifted by (0 or 1, 0 or 1) pixels, then an ordinary 2×2 max-pool of stride 2."""
    out = {}
    for key, m in maps.items():
        for a in (0, 1):
            for b in (0, 1):
                shifted = F.pad(m[..., a:, b:], (0, b, 0, a), value=-math.inf)
                out[key + ((a, b),)] = F.max_pool2d(shifted, 2, 2)
    return out


def shift_and_stitch(net: SegNet, depth: torch.Tensor) -> torch.Tensor:
    """f_s's logits computed as OverFeat describes: the ordinary network (stride-2 pools, undilated convs)
    evaluated on the feature maps shifted by one pixel along either axis before each pool (4 × 4 = 16
    evaluations at a quarter of the resolution), the outputs interleaved back into the full map; each
    layer's normalisation takes its statistics over all shifted maps of an image together. Equals the
    dense network's logits (log-softmax is per pixel)."""
    x = net.prepare(depth)
    p = SEG_KERNEL // 2
    maps = _joint_norm({(): F.conv2d(x, net.conv1.weight, padding=p)}, net.norms[0])
    maps = _pool_shifts(maps)
    maps = _joint_norm({k: F.conv2d(m, net.conv2.weight, padding=p) for k, m in maps.items()}, net.norms[1])
    maps = _pool_shifts(maps)
    maps = _joint_norm({k: F.conv2d(m, net.conv3.weight, padding=p) for k, m in maps.items()}, net.norms[2])
    maps = _joint_norm({k: net.hidden1(m) for k, m in maps.items()}, net.norms[3])
    maps = _joint_norm({k: net.hidden2(m) for k, m in maps.items()}, net.norms[4])
    size = x.shape[-1]
    logits = x.new_zeros(x.shape[0], NUM_PARTS, size, size)
    for ((a, b), (c, d)), m in maps.items():
        logits[..., a + 2 * c::4, b + 2 * d::4] = net.out(m)
    return logits


# --- the regression network f_r ----------------------------------------------------------------------

REG_SIZE = 24
FC_UNITS = 1200
ZOOM = 0.5              # the cascade's patches: half the crop's width around the first estimate


class JointNets(nn.Module):
    """``networks`` independent copies of the paper's Inception-like regressor, side by side.

    Network g sees channel g of its (B, G, 24, 24) input: c1 32 × 3×3 → 2×2 pool → F (12×12); branches
    c211 → c212 (1×1 16, 3×3 8) on F; c221 → c222 on F × mask_g (``masked``); 2×2 pool → c232 (1×1 8);
    c241 (1×1 16); flattened, concatenated, FC 1200, then ``outputs`` numbers. Conv and FC layers are
    followed by BatchNorm (training-set statistics at test time) and ReLU."""

    def __init__(self, networks: int, outputs: int, masked: bool, size: int = REG_SIZE):
        super().__init__()
        g = self.networks = networks
        self.outputs, self.masked, self.size = outputs, masked, size

        def conv(cin, cout, k):
            return nn.Sequential(nn.Conv2d(cin * g, cout * g, k, padding=k // 2, groups=g, bias=False),
                                 nn.BatchNorm2d(cout * g), nn.ReLU(inplace=True))
        self.c1 = conv(1, 32, 3)
        self.c211, self.c212 = conv(32, 16, 1), conv(16, 8, 3)
        if masked:
            self.c221, self.c222 = conv(32, 16, 1), conv(16, 8, 3)
        self.c232, self.c241 = conv(32, 8, 1), conv(32, 16, 1)
        half = size // 2
        self.features = half * half * (8 + 8 * masked + 16) + (half // 2) ** 2 * 8
        self.fc_weight = nn.Parameter(torch.empty(g, self.features, FC_UNITS))
        self.fc_norm = nn.BatchNorm1d(g * FC_UNITS)
        self.out_weight = nn.Parameter(torch.empty(g, FC_UNITS, outputs))
        self.out_bias = nn.Parameter(torch.zeros(g, outputs))

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """(B, G, S, S) inputs (and (B, G, S/2, S/2) masks) → (B, G, outputs)."""
        b, g = x.shape[:2]
        f = F.max_pool2d(self.c1(x), 2)

        def per_net(t):     # (B, G·C, h, w) → (B, G, C·h·w): each network's own channels
            return t.reshape(b, g, -1)
        branches = [per_net(self.c212(self.c211(f)))]
        if self.masked:
            m = torch.ones_like(f[:, :g]) if masks is None else masks.to(f.dtype)
            masked = (f.reshape(b, g, -1, *f.shape[-2:]) * m.unsqueeze(2)).reshape(f.shape)
            branches.append(per_net(self.c222(self.c221(masked))))
        branches += [per_net(self.c232(F.max_pool2d(f, 2))), per_net(self.c241(f))]
        h = torch.einsum("bgf,gfu->bgu", torch.cat(branches, dim=2), self.fc_weight)
        h = F.relu(self.fc_norm(h.reshape(b, -1))).reshape(b, g, FC_UNITS)
        return torch.einsum("bgu,guo->bgo", h, self.out_weight) + self.out_bias


def init_weights(model: nn.Module, seed: int | None = None) -> None:
    """Xavier-uniform weights (per network for the batched layers: fan-in and fan-out of one network),
    zero biases, norms at identity; each parameter from its own generator keyed by (seed, its name), so
    variants start their shared layers equal."""
    base = torch.initial_seed() if seed is None else seed
    with torch.no_grad():
        for name, param in model.named_parameters():
            module_name, _, leaf = name.rpartition(".")
            generator = named_generator(base, name)
            if leaf in ("fc_weight", "out_weight"):
                bound = math.sqrt(6.0 / (param.shape[1] + param.shape[2]))
                param.uniform_(-bound, bound, generator=generator)
            elif param.dim() == 4:       # conv: grouped convs count one network's fan-out
                module = model.get_submodule(module_name)
                fan_in = param[0].numel()
                fan_out = param.shape[0] // module.groups * param[0, 0].numel()
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                param.uniform_(-bound, bound, generator=generator)
            elif leaf == "weight":       # norms
                param.fill_(1.0)
            else:
                param.zero_()


def crop_positions(joints_norm: torch.Tensor, batch: dict, camera: Camera) -> torch.Tensor:
    """(B, J, 3) normalised joints → (B, J, 2) crop pixels (u, v): to mm, project, into the crop."""
    xyz = denormalize_joints(joints_norm.double(), batch["com"].double(), batch["cube"].double())
    uv = xyz_to_uvd(xyz, camera)[..., :2]
    return transform_points_2d(uv, batch["transform"].double())


class Regressor(nn.Module):
    """f_r for one Table 4 row (see the module docstring). Input (B, 1, S, S) crops, area-resized to
    24×24; ``seg`` (B, s, s) label maps from a frozen f_s for the per-joint rows; ``initial`` (B, J, 3)
    from the frozen direct network for the cascade. Output ``{"joints": (B, J, 3)}``."""

    def __init__(self, variant: str, convention: str | JointConvention = "nyu", seed: int | None = None):
        super().__init__()
        self.variant = variant
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.camera: Camera = get_camera(convention_camera(self.convention.name))
        self.parts = joint_parts(self.convention)
        j = self.num_joints = self.convention.num_joints
        if variant == "direct":
            self.nets = JointNets(1, 3 * j, masked=False)
        elif variant == "cascade":
            self.nets = JointNets(j, 3, masked=False)
        elif variant in PER_JOINT:
            self.nets = JointNets(j, 3, masked=True)
        else:
            raise ValueError(f"unknown neverova_reg variant {variant!r}; expected one of {', '.join(REG_VARIANTS)}")
        init_weights(self, seed)

    def zoomed(self, depth: torch.Tensor, batch: dict, initial: torch.Tensor) -> torch.Tensor:
        """(B, J, 24, 24): for each joint, the crop's window of ``ZOOM`` × its width centred on the first
        estimate, sampled at 24×24 (background value outside the crop)."""
        b, size = depth.shape[0], depth.shape[-1]
        if "transform" in batch:
            centre = crop_positions(initial, batch, self.camera).to(depth.dtype)
            centre = (centre + 0.5) / size * 2 - 1            # grid_sample's [-1, 1], align_corners=False
        else:                                                  # a bare input (summary, bench)
            centre = initial[..., :2].to(depth.dtype)
        j = centre.shape[1]
        ramp = torch.linspace(-1, 1, REG_SIZE, dtype=depth.dtype, device=depth.device) * ZOOM * (REG_SIZE - 1) / REG_SIZE
        gy, gx = torch.meshgrid(ramp, ramp, indexing="ij")
        grid = torch.stack((gx, gy), -1) + centre.reshape(b * j, 1, 1, 2)
        source = depth.repeat_interleave(j, dim=0) - 1          # pad with 0 = background (+1) after the shift
        patches = F.grid_sample(source, grid, align_corners=False, padding_mode="zeros") + 1
        return patches.reshape(b, j, REG_SIZE, REG_SIZE)

    def forward(self, depth: torch.Tensor, seg: torch.Tensor | None = None,
                initial: torch.Tensor | None = None, batch: dict | None = None) -> dict:
        small = F.interpolate(depth, size=REG_SIZE, mode="area") if depth.shape[-1] != REG_SIZE else depth
        b, j = depth.shape[0], self.num_joints
        if self.variant == "direct":
            return {"joints": self.nets(small).reshape(b, j, 3)}
        if self.variant == "cascade":
            if initial is None:
                initial = torch.zeros(b, j, 3, dtype=depth.dtype, device=depth.device)
            correction = self.nets(self.zoomed(depth, batch or {}, initial))
            return {"joints": initial.to(correction.dtype) + correction, "initial": initial}
        masks = None if seg is None else local_masks(seg, self.parts, REG_SIZE // 2)
        return {"joints": self.nets(small.expand(-1, j, -1, -1), masks)}


# --- building, forward, losses, predictions -----------------------------------------------------------

SEG_VARIANTS = {"synthetic": "Fully supervised training only (synth. segmentations)",
                "weak": "Semi-/weakly-supervised training (synth. segmentations + real joint positions)"}
REG_VARIANTS = {"direct": "(a) baseline: direct regression",
                "cascade": "(b) baseline: cascade direct regression (two steps)",
                "per_joint_synthetic": "(c) baseline: semi-supervised network",
                "per_joint_weak": "(d) ours: semi/weakly supervised network"}
PER_JOINT = ("per_joint_synthetic", "per_joint_weak")


def build_seg(variant: str = "synthetic", convention="nyu", image_size: int = SEG_SIZE,
              seg_size: int | str | None = None) -> SegNet:
    """f_s at ``seg_size`` (pixels, or a named setting of :data:`SEG_SETTINGS`; default: the crop's size)."""
    if variant not in SEG_VARIANTS:
        raise ValueError(f"unknown neverova_seg variant {variant!r}; expected one of {', '.join(SEG_VARIANTS)}")
    size = SEG_SETTINGS[seg_size] if isinstance(seg_size, str) else (seg_size or image_size)
    return SegNet(size, convention)


def build_reg(variant: str = "per_joint_weak", convention="nyu", image_size: int = REG_SIZE) -> Regressor:
    return Regressor(variant, convention)


def seg_targets(batch: dict, size: int) -> torch.Tensor:
    """(B, size, size) class targets 0..19 of the hand pixels of frames whose labels may be trained on,
    -100 (ignored) elsewhere: background, unknown labels, and every frame with ``parts_trainable`` False."""
    labels = resize_nearest(hand_labels(batch["parts"]), size)
    trainable = batch.get("parts_trainable")
    keep = (labels >= 1) & (labels <= NUM_PARTS)
    if trainable is not None:
        keep &= trainable.reshape(-1, 1, 1).to(keep.device)
    return torch.where(keep, labels - 1, torch.full_like(labels, -100))


def part_barycentres(labels: torch.Tensor, parts, depth: torch.Tensor | None = None):
    """(B, s, s) label maps → ((B, J, 2) barycentres in map pixels (u, v), (B, J) mean depth of those
    pixels (0 without ``depth``), (B, J) whether joint j's parts hold any pixel)."""
    masks = joint_masks(labels, parts)
    count = masks.sum((-2, -1))
    h, w = labels.shape[-2:]
    v, u = torch.meshgrid(torch.arange(h, dtype=masks.dtype, device=masks.device),
                          torch.arange(w, dtype=masks.dtype, device=masks.device), indexing="ij")
    safe = count.clamp(min=1)
    uv = torch.stack(((masks * u).sum((-2, -1)) / safe, (masks * v).sum((-2, -1)) / safe), -1)
    z = (masks * depth.unsqueeze(1)).sum((-2, -1)) / safe if depth is not None else torch.zeros_like(count)
    return uv, z, count > 0


def seg_forward(net: SegNet, batch: dict) -> dict:
    """f_s's outputs; in eval mode on a batch with crop geometry also ``labels`` and ``joints_norm``: each
    joint placed at the barycentre of its predicted part(s), at their mean depth (the crop's centre where
    no pixel carries them), normalised like the labels: what the loop scores as this network's joints."""
    out = net(batch["depth"])
    if net.training or "transform" not in batch:
        return out
    depth = batch["depth"]
    labels = net.labels(out["log_probs"], depth)
    small = resize_nearest(depth[:, 0], net.seg_size)
    uv, z, found = part_barycentres(labels, joint_parts(net.convention), small)
    scale = depth.shape[-1] / net.seg_size
    uv = (uv + 0.5) * scale - 0.5
    centre = torch.full_like(uv, (depth.shape[-1] - 1) / 2)
    uv = torch.where(found.unsqueeze(-1), uv, centre)
    z = torch.where(found, z, torch.zeros_like(z))
    crop = torch.cat((uv.double(), z.double().unsqueeze(-1)), -1)
    uvd = uncrop_joints(crop, batch["transform"].double(), batch["com"][:, 2].double(), batch["cube"][:, 2].double())
    xyz = uvd_to_xyz(uvd, net.camera)
    out["labels"] = labels
    out["joints_norm"] = normalize_joints(xyz, batch["com"].double(), batch["cube"].double()).float()
    return out


def seg_loss(outputs: dict, batch: dict) -> dict:
    """Per-pixel negative log-likelihood over the 20 parts, averaged over the pixels that have a target."""
    log_probs = outputs["log_probs"]
    target = seg_targets(batch, log_probs.shape[-1]).to(log_probs.device)
    if not (target >= 0).any():
        nll = log_probs.sum() * 0.0
    else:
        nll = F.nll_loss(log_probs.float(), target, ignore_index=-100)
    return {"nll": nll, "total": nll}


def seg_predict(outputs: dict) -> torch.Tensor:
    return outputs["joints_norm"]


def segmentation_scores(pred: torch.Tensor, truth: torch.Tensor) -> dict:
    """Per-pixel accuracy (share of hand pixels labelled right) and per-class accuracy (mean over parts
    present of each part's recall), over the hand pixels of ``truth`` (labels 1..20; both (N, s, s))."""
    pred, truth = pred.reshape(-1).long(), truth.reshape(-1).long()
    hand = (truth >= 1) & (truth <= NUM_PARTS)
    pred, truth = pred[hand], truth[hand]
    if truth.numel() == 0:
        return {"pixel_accuracy": float("nan"), "class_accuracy": float("nan")}
    correct = torch.bincount(truth[pred == truth], minlength=LABELS).double()
    total = torch.bincount(truth, minlength=LABELS).double()
    present = total > 0
    return {"pixel_accuracy": float(correct.sum() / total.sum()),
            "class_accuracy": float((correct[present] / total[present]).mean())}


def seg_evaluate(model, predict_fn, dataset, *, batch_size: int = 64, device=None, forward=seg_forward,
                 num_workers: int = 0, **_) -> dict:
    """Validation of f_s: per-pixel and per-class accuracy against the split's part labels."""
    from torch.utils.data import DataLoader

    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    preds, truths = [], []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            out = forward(model, batch)
            labels = out["labels"] if "labels" in out else model.labels(out["log_probs"], batch["depth"])
            preds.append(labels.cpu())
            truths.append(resize_nearest(hand_labels(batch["parts"]), labels.shape[-1]).cpu())
    model.train(was_training)
    return segmentation_scores(torch.cat(preds), torch.cat(truths))


def attach_segmentation(seg_net: SegNet, batch: dict) -> dict:
    """The per-joint rows' upstream: the frozen f_s's label map of each crop, as ``batch["seg"]``."""
    out = dict(batch)
    out["seg"] = seg_net.labels(seg_net(batch["depth"])["log_probs"], batch["depth"])
    return out


def attach_initial(direct: Regressor, batch: dict) -> dict:
    """The cascade's upstream: the frozen direct network's estimate, as ``batch["initial"]``."""
    out = dict(batch)
    out["initial"] = direct(batch["depth"])["joints"]
    return out


def reg_forward(net: Regressor, batch: dict) -> dict:
    return net(batch["depth"], seg=batch.get("seg"), initial=batch.get("initial"), batch=batch)


def reg_loss(outputs: dict, batch: dict) -> dict:
    """L2 on the crop-normalised joints: Σ over joints and coordinates of the squared error, batch mean."""
    l2 = (outputs["joints"].float() - batch["joints"].float()).pow(2).sum((-2, -1)).mean()
    return {"l2": l2, "total": l2}


def reg_predict(outputs: dict) -> torch.Tensor:
    return outputs["joints"]


# --- the weakly supervised mix -----------------------------------------------------------------------

WEAK_RATIO = 9          # synthetic frames per restored real-like frame (§3.1: 9 : 1)
DICTIONARY_PER_MAP = 64  # patches cut from each synthetic label map (profile setting "dictionary_per_map")


class WeakMix(torch.utils.data.Dataset):
    """The weak fine-tuning data: every ``ratio + 1``-th item a restored real-like frame, the others
    synthetic frames with their labels, cycling through both.

    A real-like frame's own ``parts`` never reach training: its sample is rebuilt from its depth, joints
    and geometry (the keys of ``KEEP``), and ``parts`` is the restored map (the synthetic-only f_s's
    prediction after patchwise restoration, hand labels 0..20) with ``parts_trainable`` True; frames
    whose restoration was rejected are left out (``accepted``)."""

    KEEP = ("depth", "joints", "joints_xyz", "joints_uvd", "joints_crop", "com", "cube", "transform", "visible")

    def __init__(self, synthetic, real_like, restored: torch.Tensor, accepted, ratio: int = WEAK_RATIO):
        if len(restored) != len(real_like):
            raise ValueError(f"{len(restored)} restored maps for {len(real_like)} real-like frames")
        self.synthetic, self.real_like, self.ratio = synthetic, real_like, ratio
        self.restored = torch.as_tensor(restored).long()
        self.real_indices = [int(i) for i in np.flatnonzero(np.asarray(accepted, dtype=bool))]
        if not self.real_indices:
            raise ValueError("no accepted restoration: the mix would hold synthetic frames only")
        period = ratio + 1
        self.length = max(len(synthetic) * period // ratio, len(self.real_indices) * period)

    def __len__(self) -> int:
        return self.length

    def is_real(self, index: int) -> bool:
        return index % (self.ratio + 1) == self.ratio

    def __getitem__(self, index: int) -> dict:
        period = self.ratio + 1
        if not self.is_real(index):
            k = (index // period) * self.ratio + index % period
            source = self.synthetic[k % len(self.synthetic)]
            # the keys a real-like item has (a split of clips' frames adds its clip and step)
            sample = {key: source[key] for key in (*self.KEEP, "parts_trainable")}
            sample["parts"] = hand_labels(source["parts"])
            sample["restored"] = torch.tensor(False)
        else:
            frame = self.real_indices[(index // period) % len(self.real_indices)]
            source = self.real_like[frame]
            sample = {key: source[key] for key in self.KEEP}
            size = sample["depth"].shape[-1]
            restored = self.restored[frame]
            if restored.shape[-1] != size:
                restored = F.interpolate(restored[None, None].float(), size=size, mode="nearest")[0, 0].long()
            sample["parts"] = restored
            sample["parts_trainable"] = torch.tensor(True)
            sample["restored"] = torch.tensor(True)
        sample["index"] = torch.tensor(index, dtype=torch.int64)
        return sample


def restoration_sizes(seg_size: int = SEG_SIZE) -> tuple[int, int]:
    """(patch, window) of the restoration at a segmentation of ``seg_size`` pixels: the paper's 27 and 17 at
    48, scaled with the map and kept odd (13 and 9 in the fast 24-pixel setting, where a 27-pixel patch
    would be wider than the map)."""
    from handlib.restoration import PATCH, WINDOW

    return tuple(int(size * seg_size / SEG_SIZE) | 1 for size in (PATCH, WINDOW))


def patch_dictionary(synthetic, size: int = SEG_SIZE, per_map: int | None = None, seed: int = 0,
                     approximate: bool = True, batch_size: int = 256):
    """The restoration's dictionary: label patches (27 × 27 at 48 pixels, :func:`restoration_sizes`) of the
    synthetic frames' hand label maps (forearm as palm) at the segmentation's resolution ``size``, around
    every hand pixel or ``per_map`` of them."""
    from torch.utils.data import DataLoader

    from handlib.restoration import PatchDictionary, cut_patches

    maps = [resize_nearest(hand_labels(batch["parts"]), size).clamp(min=0)
            for batch in DataLoader(synthetic, batch_size=batch_size)]
    patches = cut_patches(torch.cat(maps).numpy().astype(np.uint8), per_map=per_map, seed=seed,
                          patch=restoration_sizes(size)[0])
    return PatchDictionary(patches, approximate=approximate)


READS = ("depth", "joints_crop")     # all that restoring a real-like frame may read of it


def restore_frames(seg_net: SegNet, frames, dictionary, *, exact: bool = False, batch_size: int = 32,
                   convention=None) -> dict:
    """Restore the frozen f_s's predictions on ``frames`` (real-like: joints known, parts hidden) by Eq. 2
    and apply the acceptance test with the known joints. Reads nothing of a frame but :data:`READS`.

    Returns ``predicted`` and ``restored`` (N, s, s) label maps, ``accepted`` (N,) bool and
    ``seconds_per_frame`` (restoration alone, not the network)."""
    import time

    from handlib.restoration import accept, restore

    parts = joint_parts(convention or seg_net.convention)
    window = restoration_sizes(seg_net.seg_size)[1]
    seg_net.eval()
    predicted, restored, accepted, seconds = [], [], [], 0.0
    for start in range(0, len(frames), batch_size):
        samples = [frames[i] for i in range(start, min(start + batch_size, len(frames)))]
        depth = torch.stack([s["depth"] for s in samples])
        uv = torch.stack([s["joints_crop"][:, :2] for s in samples]).double()
        with torch.no_grad():
            labels = seg_net.labels(seg_net(depth)["log_probs"], depth)
        mask = foreground_mask(resize_nearest(depth[:, 0], seg_net.seg_size)).numpy()
        uv = ((uv + 0.5) * seg_net.seg_size / depth.shape[-1] - 0.5).numpy()
        for k, label_map in enumerate(labels.numpy()):      # per frame: each is one faiss query batch
            tick = time.perf_counter()
            after = restore(label_map, mask[k], dictionary, exact=exact, window=window)
            seconds += time.perf_counter() - tick
            predicted.append(label_map)
            restored.append(after)
            accepted.append(accept(label_map, after, uv[k], parts))
    return {"predicted": torch.from_numpy(np.stack(predicted)), "restored": torch.from_numpy(np.stack(restored)),
            "accepted": np.array(accepted, dtype=bool), "seconds_per_frame": seconds / max(len(frames), 1)}


REAL_SPLIT = "train_real"      # the real-like training frames' own stream (no pose shared with "train")


def real_like_frames(n: int, size: int = SEG_SIZE, convention: str = "nyu", seed: int = 0, split: str = REAL_SPLIT):
    """``n`` real-like training frames (the sensor-corrupted domain, whose labels are hidden from training)."""
    from handlib.synth import SyntheticHands

    return SyntheticHands(split, n=n, size=size, domain="real-like", convention=convention, seed=seed,
                          progress=False)


def weak_training_split(synthetic, seg_net: SegNet, real_like=None, *, ratio: int = WEAK_RATIO,
                        per_map: int | None = DICTIONARY_PER_MAP, exact: bool = False, seed: int = 0) -> tuple:
    """The weak stage's training split from the synthetic one and the frozen synthetic-only f_s: a
    dictionary of ``synthetic``'s label patches, the real-like frames (default: one for every ``ratio``
    synthetic frames) restored and tested, and the 9 : 1 mix of synthetic frames and accepted restorations.
    Returns (:class:`WeakMix`, :func:`restore_frames`'s dict, the dictionary)."""
    if real_like is None:
        real_like = real_like_frames(max(1, len(synthetic) // ratio), synthetic[0]["depth"].shape[-1],
                                     seg_net.convention.name, seed)
    dictionary = patch_dictionary(synthetic, seg_net.seg_size, per_map=per_map, seed=seed, approximate=not exact)
    restored = restore_frames(seg_net, real_like, dictionary, exact=exact)
    mix = WeakMix(synthetic, real_like, restored["restored"], restored["accepted"], ratio)
    return mix, restored, dictionary


def weak_split(train, stage_nets, profile):
    """The weak variant's training split, for a run (its ``ModelSpec.train_split`` hook): the 9 : 1 mix
    built with the frozen synthetic-only f_s (``stage_nets[0]``) from the loaded synthetic training split,
    with ``profile.extra["dictionary_per_map"]`` patches per label map (default :data:`DICTIONARY_PER_MAP`)."""
    per_map = profile.extra.get("dictionary_per_map", DICTIONARY_PER_MAP)
    return weak_training_split(train, stage_nets[0], per_map=per_map)[0]


# --- recipes and the registry entries ---------------------------------------------------------------

# f_s: Torch7 SGD, lr 0.1, learningRateDecay 1e-5 (lr / (1 + t · 1e-5), t in updates), batch 1, 100 epochs
# over 170,974 renders.
SEG_FRAMES = 170_974
SEG_RECIPE = Recipe(optimizer="sgd", lr=0.1, momentum=0.0, epochs=100, batch_size=1, schedule="inverse",
                    lr_decay=1e-5)
# The weak fine-tuning: 10 epochs on the 9 : 1 mix, at the rate the first stage ended with (after its
# 100 · 170,974 updates: 0.1 / 18.1).
WEAK_RECIPE = Recipe(optimizer="sgd", lr=SEG_RECIPE.lr_at_step(SEG_RECIPE.epochs * SEG_FRAMES, SEG_FRAMES),
                     momentum=0.0, epochs=10, batch_size=1)
# f_r: Adam, lr 0.05, batch 64 (the epochs are not given: 30 here).
REG_RECIPE = Recipe(optimizer="adam", lr=0.05, epochs=30, batch_size=64)


def embed_seg(weak: SegNet, synthetic: SegNet) -> None:
    """The weak stage starts from the synthetic-only network's weights (then trains all of them)."""
    weak.load_state_dict(synthetic.state_dict())


SEG_SPEC = register_model(ModelSpec(
    name="neverova_seg",
    paper="Neverova, Wolf, Nebout, Taylor. Hand pose estimation through semi-supervised and "
          "weakly-supervised learning. Computer Vision and Image Understanding, 2017",
    chapter="neverova",
    variants=SEG_VARIANTS,
    default_variant="synthetic",
    build=build_seg,
    loss=seg_loss,
    predict=seg_predict,
    recipe=SEG_RECIPE,
    convention="nyu",
    input_size=SEG_SIZE,
    data="parts",
    forward=seg_forward,
    selection=Selection(name="pixel_accuracy", lower_is_better=False, evaluate=seg_evaluate),
    # weak: starts from the synthetic-only f_s (embedded), trains on the 9 : 1 mix that f_s's restored
    # predictions on real-like frames make with the synthetic split (weak_split)
    variant_overrides={"weak": {"recipe": WEAK_RECIPE,
                                "upstream": Upstream("neverova_seg", "synthetic", embed=embed_seg),
                                "train_split": weak_split}},
    build_settings=("seg_size",),
))

REG_SPEC = register_model(ModelSpec(
    name="neverova_reg",
    paper=SEG_SPEC.paper,
    chapter="neverova",
    variants=REG_VARIANTS,
    default_variant="per_joint_weak",
    build=build_reg,
    loss=reg_loss,
    predict=reg_predict,
    recipe=REG_RECIPE,
    convention="nyu",
    input_size=REG_SIZE,
    forward=reg_forward,
    variant_overrides={
        "cascade": {"upstream": Upstream("neverova_reg", "direct", attach=attach_initial)},
        "per_joint_synthetic": {"upstream": Upstream("neverova_seg", "synthetic", attach=attach_segmentation)},
        "per_joint_weak": {"upstream": Upstream("neverova_seg", "weak", attach=attach_segmentation)},
    },
))
