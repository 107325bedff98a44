"""CrossInfoNet (Du, Lin, Sun, Ma, CVPR 2019) as the released code builds it.

Layer by layer from ``dumyy/handpose`` ``netlib/basemodel.py: basenet2`` (TensorFlow 1.x, slim):
a ResNet-50-unit-count backbone at the code's narrow widths, an FPN merge, a 24×24 all-joint
heat-map head, palm and finger branches with the cross-connection (paper Alg. 1, Fig. 6), and
three FC heads (palm, finger, whole hand). Only the whole-hand head is used at test time.

The four variants of the paper's Table 1 ("Base" is not in the released code; ours is a reading):

==========  ==================================================  =================
variant     refinement                                          heat-map losses
==========  ==================================================  =================
base        P2 = p1(P0), F2 = f1(F0): no subtraction or concat  none
base_hm     as base                                             L_ht, L_bp, L_bf
cross       P1 = [P0, T − F0], F1 = [F0, T − P0] (the paper's)  none
cross_hm    as cross (the released model)                       L_ht, L_bp, L_bf
==========  ==================================================  =================

Heat-map heads (and the finest FPN merge, which feeds only the all-joint heat-map head) are built
only for the ``*_hm`` variants: without their loss they would be untrained dead weight (0.49 M
parameters that a Base counted with every released layer, 23.51 M, would still include). At test time the released code
fetches only the hand output, so TF never runs them; ``forward(with_heatmaps=False)`` does the same.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from handlib.joints import JointConvention, get_convention
from handlib.losses import crossinfonet_heatmap_targets, crossinfonet_loss
from handlib.models.blocks import (Bottleneck, ConvBN, LinearBN, fuse_batchnorm, resnet_stage,
                                   xavier_init)
from handlib.models.registry import ModelSpec, register_model
from handlib.recipe import Recipe
from handlib.sample import stack_fields

STEM_CHANNELS = 32
FPN_CHANNELS = 256
BRANCH_WIDTH = 128          # bottleneck width of the heat-map, P0/F0 and P2/F2 units
FC_WIDTH = 1024
DROPOUT = 0.4               # the code's keep_prob 0.6 (the paper's "dropout rate 0.6")
# (units, bottleneck width, output channels) of the four stages, stride 2 in each last unit.
BACKBONE_STAGES = ((3, 16, 64), (4, 32, 128), (6, 64, 256), (3, 64, 256))


@dataclass(frozen=True)
class Widths:
    """Every channel count of the network, the released code's at ``scale`` 1. A smaller ``scale``
    (a named profile setting, ``width``) multiplies all of them (stem, stages, pyramid, branches, FC);
    unit counts, resolutions and the stem's 5×5 kernel stay the code's."""

    scale: float = 1.0

    def __post_init__(self):
        if not 0 < self.scale <= 1:
            raise ValueError(f"CrossInfoNet width scale must be in (0, 1], got {self.scale}")

    def of(self, channels: int) -> int:
        return max(4, round(channels * self.scale))

    @property
    def stem(self) -> int:
        return self.of(STEM_CHANNELS)

    @property
    def stages(self) -> tuple[tuple[int, int, int], ...]:
        return tuple((units, self.of(width), self.of(out)) for units, width, out in BACKBONE_STAGES)

    @property
    def fpn(self) -> int:
        return self.of(FPN_CHANNELS)

    @property
    def branch(self) -> int:
        return self.of(BRANCH_WIDTH)

    @property
    def fc(self) -> int:
        return self.of(FC_WIDTH)


@dataclass(frozen=True)
class Variant:
    """One Table 1 row: whether the branches cross-connect and whether heat maps supervise."""

    name: str          # the paper's label
    cross: bool
    heatmaps: bool


VARIANTS: dict[str, Variant] = {
    "base": Variant("Base", cross=False, heatmaps=False),
    "base_hm": Variant("Base+HM", cross=False, heatmaps=True),
    "cross": Variant("Cross", cross=True, heatmaps=False),
    "cross_hm": Variant("Cross+HM", cross=True, heatmaps=True),
}
DEFAULT_VARIANT = "cross_hm"


def get_variant(name: str) -> Variant:
    """Accepts ids (``cross_hm``) or the paper's labels (``Cross+HM``), case-insensitively."""
    key = name.lower().replace("+", "_")
    if key not in VARIANTS:
        raise ValueError(f"unknown CrossInfoNet variant {name!r}; expected one of {list(VARIANTS)}")
    return VARIANTS[key]


class BranchHeatmapHead(nn.Module):
    """Palm / finger heat maps from P0 / F0 (L_bp, L_bf): 1×1 conv 256 → 3×3 conv to K maps at
    T's resolution, bilinearly upsampled 2× to the 24×24 target grid."""

    def __init__(self, num_maps: int, channels: int = FPN_CHANNELS):
        super().__init__()
        self.hidden = ConvBN(channels, channels, 1)
        self.maps = ConvBN(channels, num_maps, 3, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.maps(self.hidden(x))
        return F.interpolate(maps, scale_factor=2.0, mode="bilinear", align_corners=False)


class RegressionBranch(nn.Module):
    """P2 = p1(P1) (or F2), 2×2 max-pool, FC 1024 → dropout → FC 1024 → dropout → FC 3·K.

    Returns the 1024-d post-dropout feature (fed to the whole-hand head) and the K joints."""

    def __init__(self, in_channels: int, pooled_pixels: int, num_joints: int, widths: "Widths | None" = None):
        super().__init__()
        w = widths or Widths()
        self.refine = Bottleneck(in_channels, w.branch, w.fpn)
        self.fc1 = LinearBN(w.fpn * pooled_pixels, w.fc)
        self.fc2 = LinearBN(w.fc, w.fc)
        self.dropout = nn.Dropout(DROPOUT)
        self.joints = LinearBN(w.fc, 3 * num_joints, relu=False)

    def forward(self, x: torch.Tensor, features: dict | None = None, prefix: str = ""):
        refined = self.refine(x)                                   # P2 / F2
        pooled = F.max_pool2d(refined, 2, 2)
        hidden = self.dropout(self.fc1(torch.flatten(pooled, 1)))
        hidden = self.dropout(self.fc2(hidden))
        joints = self.joints(hidden)
        if features is not None:
            features[f"{prefix}2"] = refined
            features[f"{prefix}_pooled"] = pooled
            features[f"{prefix}_fc"] = hidden
        return hidden, joints.reshape(x.shape[0], -1, 3)


class CrossInfoNet(nn.Module):
    """(B, 1, S, S) normalised depth crop → dict of outputs (S = 96 in the paper).

    ``hand`` (B, J, 3): the test-time prediction (normalised joints, the dataset's order);
    ``palm`` (B, P, 3) and ``finger`` (B, F, 3): auxiliary heads, in the code's slicing order;
    ``heatmap`` (B, J, S/4, S/4), ``palm_heatmap``, ``finger_heatmap``: the heat-map constraints
    (``*_hm`` variants only); ``palm_joints`` / ``finger_joints``: the partition index tensors
    the loss slices the ground truth with.
    """

    def __init__(self, variant: str = DEFAULT_VARIANT, convention: str | JointConvention = "nyu",
                 image_size: int = 96, width: float = 1.0):
        super().__init__()
        if image_size % 16 != 0 or image_size < 32:
            raise ValueError(f"image_size must be a multiple of 16 and >= 32, got {image_size}")
        self.variant = get_variant(variant)
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.image_size = image_size
        self.widths = w = Widths(width)
        num_joints = self.convention.num_joints
        self.register_buffer("palm_joints", torch.tensor(self.convention.palm), persistent=False)
        self.register_buffer("finger_joints", torch.tensor(self.convention.finger),
                             persistent=False)

        # Initial feature extraction (Fig. 2): stem, 3-4-6-3 bottleneck stages.
        self.stem = ConvBN(1, w.stem, 5, stride=2)                 # (B, 32, S/2, S/2)
        stages, in_ch = [], w.stem
        for units, width_, out_ch in w.stages:
            stages.append(resnet_stage(in_ch, width_, out_ch, units, stride=2))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        # FPN: laterals (1×1 + BN + ReLU) and, below the top, a 1×1 after each bilinear upsample.
        # The finest (S/4) merge feeds only the all-joint heat-map head, so it exists only in the
        # heat-map variants (TF computes it only when that loss is fetched).
        self.laterals = nn.ModuleList(ConvBN(c, w.fpn, 1) for _, _, c in w.stages[1:])
        self.top_down = nn.ModuleList(ConvBN(w.fpn, w.fpn, 1, relu=False) for _ in w.stages[2:])
        if self.variant.heatmaps:
            self.fine_lateral = ConvBN(w.stages[0][2], w.fpn, 1)
            self.fine_top_down = ConvBN(w.fpn, w.fpn, 1, relu=False)

        # Refinement (Fig. 6): preliminary palm / finger features P0, F0.
        self.palm_initial = Bottleneck(w.fpn, w.branch, w.fpn)     # p0
        self.finger_initial = Bottleneck(w.fpn, w.branch, w.fpn)   # f0
        if self.variant.heatmaps:
            self.heatmap_head = nn.Sequential(
                Bottleneck(w.fpn, w.branch, w.fpn),
                ConvBN(w.fpn, num_joints, 3, relu=False))
            self.palm_heatmap_head = BranchHeatmapHead(len(self.convention.palm), w.fpn)
            self.finger_heatmap_head = BranchHeatmapHead(len(self.convention.finger), w.fpn)
        branch_in = 2 * w.fpn if self.variant.cross else w.fpn
        pooled_pixels = (image_size // 16) ** 2
        self.palm_branch = RegressionBranch(branch_in, pooled_pixels, len(self.convention.palm), w)
        self.finger_branch = RegressionBranch(branch_in, pooled_pixels, len(self.convention.finger), w)
        self.hand_head = LinearBN(2 * w.fc, 3 * num_joints, relu=False)
        xavier_init(self)

    def forward(self, depth: torch.Tensor, with_heatmaps: bool | None = None,
                return_features: bool = False) -> dict:
        """``with_heatmaps=False`` skips the heat-map heads (as TF's graph pruning does when
        only the hand output is fetched); ``return_features`` adds every intermediate map."""
        if depth.dim() != 4 or depth.shape[1] != 1 or depth.shape[-1] != self.image_size \
                or depth.shape[-2] != self.image_size:
            raise ValueError(f"CrossInfoNet expects depth of shape (B, 1, {self.image_size}, "
                             f"{self.image_size}), got {tuple(depth.shape)}")
        heatmaps = self.variant.heatmaps if with_heatmaps is None else with_heatmaps
        if heatmaps and not self.variant.heatmaps:
            raise ValueError(f"variant {self.variant.name} has no heat-map heads")
        features: dict | None = {} if return_features else None

        x = F.max_pool2d(self.stem(depth), 3, stride=1, padding=1)   # pool1: 3×3 stride 1
        stem = x
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)                       # S/4, S/8, S/16, S/32
        merged = {len(levels) - 1: self.laterals[-1](levels[-1])}      # top: S/32
        for i in range(len(levels) - 2, 0, -1):                           # S/16, then S/8
            merged[i] = self._merge(merged[i + 1], self.laterals[i - 1](levels[i]),
                                    self.top_down[i - 1])
        trunk = merged[1]                          # T: (B, 256, S/8, S/8)
        if heatmaps:                               # S/4 merge, input of the heat-map head
            merged[0] = self._merge(trunk, self.fine_lateral(levels[0]), self.fine_top_down)

        palm0 = self.palm_initial(trunk)           # P0
        finger0 = self.finger_initial(trunk)       # F0
        if self.variant.cross:
            finger_attention = trunk - palm0       # F₋ = T − P0: what the palm did not explain
            palm_attention = trunk - finger0       # P₋ = T − F0
            palm1 = torch.cat((palm0, palm_attention), dim=1)        # P1
            finger1 = torch.cat((finger0, finger_attention), dim=1)  # F1
        else:
            palm1, finger1 = palm0, finger0
        palm_fc, palm = self.palm_branch(palm1, features, "P")
        finger_fc, finger = self.finger_branch(finger1, features, "F")
        hand = self.hand_head(torch.cat((palm_fc, finger_fc), dim=1)).reshape(
            depth.shape[0], -1, 3)

        out = {"hand": hand, "palm": palm, "finger": finger,
               "palm_joints": self.palm_joints, "finger_joints": self.finger_joints}
        if heatmaps:
            out["heatmap"] = self.heatmap_head(merged[0])     # (B, J, S/4, S/4)
            out["palm_heatmap"] = self.palm_heatmap_head(palm0)
            out["finger_heatmap"] = self.finger_heatmap_head(finger0)
        if features is not None:
            features["stem"] = stem
            features.update({f"block{i + 1}": level for i, level in enumerate(levels)})
            features.update({f"fpn{i + 1}": m for i, m in sorted(merged.items())})
            features.update({"T": trunk, "P0": palm0, "F0": finger0, "P1": palm1, "F1": finger1})
            if self.variant.cross:
                features.update({"finger_attention": finger_attention,
                                 "palm_attention": palm_attention})
            out["features"] = features
        return out

    @staticmethod
    def _merge(coarse: torch.Tensor, lateral: torch.Tensor, top_down: nn.Module) -> torch.Tensor:
        """FPN top-down step: bilinear resize to the lateral's size, 1×1 conv + BN, add."""
        upsampled = F.interpolate(coarse, size=lateral.shape[-2:], mode="bilinear",
                                  align_corners=False)
        return top_down(upsampled) + lateral

    def fuse_for_inference(self) -> "CrossInfoNet":
        """Eval mode, every BatchNorm folded into its conv / linear; same outputs (to float
        rounding), fewer kernels. Irreversible: build a new model to train again."""
        return fuse_batchnorm(self)


def build(variant: str = DEFAULT_VARIANT, convention: str | JointConvention = "nyu",
          image_size: int = 96, width: float = 1.0) -> CrossInfoNet:
    """``width``: the profile setting of that name (:class:`Widths`; 1 = the released code's)."""
    return CrossInfoNet(variant=variant, convention=convention, image_size=image_size, width=width)


def predict(outputs: dict) -> torch.Tensor:
    """The whole-hand head: (B, J, 3) normalised joints in the dataset's order."""
    return outputs["hand"]


def assemble_from_branches(outputs: dict) -> torch.Tensor:
    """Alg. 1's literal J = J_p ⊗ J_f: the palm and finger heads' joints scattered back into the
    dataset's order, (B, J, 3). The released code predicts J with its own head instead
    (:func:`predict`); this is for comparing the two readings."""
    palm, finger = outputs["palm"], outputs["finger"]
    joints = palm.new_empty(palm.shape[0], palm.shape[1] + finger.shape[1], 3)
    joints[:, outputs["palm_joints"]] = palm
    joints[:, outputs["finger_joints"]] = finger
    return joints


# How the BatchNorms that end every output (coordinates and heat maps) start (profile knob
# ``output_init``): "code": scale 1, shift 0 (the released code, what `full` trains with);
# "target_stats": shift = the training targets' mean and scale = their spread, per output channel.
# With scale 1 the first coordinates spread ~5x wider than the normalised joints (std ~0.2) and the
# heat maps ~16x wider than their targets (std ~0.06), and Adam shrinks a scale by about one learning
# rate per step: hundreds of steps spent on the scales alone, which a short CPU budget does not have
# (measured in the chapter).
OUTPUT_INITS = ("code", "target_stats")


@torch.no_grad()
def init_outputs_from_targets(net: CrossInfoNet, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Start each regression head's output BatchNorm at the targets' statistics: shift = ``mean``,
    scale = ``std`` (both (J, 3), the dataset's joint order), the palm / finger heads at their
    subsets. The first predictions then have the targets' mean and spread."""
    _init_output_bns(net, mean, std, (net.convention.num_joints, 3), (
        (net.hand_head.bn, slice(None)), (net.palm_branch.joints.bn, net.palm_joints),
        (net.finger_branch.joints.bn, net.finger_joints)))


@torch.no_grad()
def init_heatmaps_from_targets(net: CrossInfoNet, mean: torch.Tensor, std: torch.Tensor) -> None:
    """The same for the heat-map heads (``*_hm`` variants): ``mean`` and ``std`` (J,) are each
    joint's heat-map target statistics over frames and pixels."""
    if not net.variant.heatmaps:
        raise ValueError(f"variant {net.variant.name} has no heat-map heads")
    _init_output_bns(net, mean, std, (net.convention.num_joints,), (
        (net.heatmap_head[1].bn, slice(None)), (net.palm_heatmap_head.maps.bn, net.palm_joints),
        (net.finger_heatmap_head.maps.bn, net.finger_joints)))


def _init_output_bns(net, mean, std, expected, heads) -> None:
    if tuple(mean.shape) != expected or tuple(std.shape) != expected:
        raise ValueError(f"target mean and std must have shape {expected}, got "
                         f"{tuple(mean.shape)} and {tuple(std.shape)}")
    for bn, joints in heads:
        bn.bias.copy_(mean[joints].reshape(-1))
        bn.weight.copy_(std[joints].reshape(-1))


def data_dependent_init(net: CrossInfoNet, train_set, settings: dict) -> str:
    """Apply the profile setting ``output_init`` (default "code") to a freshly built network; returns
    the setting's name, which the run records and a resume checks."""
    mode = settings.get("output_init", "code")
    if mode not in OUTPUT_INITS:
        raise ValueError(f"unknown output_init {mode!r}; valid values: {', '.join(OUTPUT_INITS)}")
    if mode == "target_stats":
        if len(train_set) < 2:
            raise ValueError(f"output_init 'target_stats' needs at least 2 training frames, got {len(train_set)}")
        fields = stack_fields(train_set, ("joints", "joints_crop"))
        init_outputs_from_targets(net, fields["joints"].mean(0), fields["joints"].std(0))
        if net.variant.heatmaps:
            maps = crossinfonet_heatmap_targets(fields["joints_crop"], net.image_size,
                                                net.image_size // 4)            # (N, J, S/4, S/4)
            init_heatmaps_from_targets(net, maps.mean((0, 2, 3)), maps.std((0, 2, 3)))
    return mode


def training_augmentation(dataset: str):
    """The paper's online augmentation (Du et al. §3.5; released code, ``util/preprocess.py``) for
    training batches of a real dataset: per sample one of CoM shift / in-plane rotation / cube
    scale / none, in the released script's mode order and ranges (:mod:`handlib.data.augment`). None for the synthetic hands, whose renderer
    already draws every pose, rotation and scale (the book profile trains without it).

    The returned ``batch -> batch`` function draws from torch's global RNG, which training checkpoints
    save, so an augmented run resumes exactly."""
    from handlib.dataset_registry import get_dataset

    if get_dataset(dataset).synthetic:      # rendered hands (synthetic or real-like)
        return None
    from handlib.data.augment import MSRA_MODES, NYU_MODES, AugmentConfig, augment_batch
    from handlib.geometry import get_camera

    camera = get_camera(dataset)              # the loaders' (training) intrinsics
    config = AugmentConfig(modes=MSRA_MODES if dataset == "msra" else NYU_MODES)

    def augment(batch: dict) -> dict:
        return augment_batch(batch, camera, config)
    return augment


# The paper's recipe (Du et al., CVPR 2019, §3.5): Adam 1e-3 × 0.96 per epoch, batch 128, 110
# epochs (the released script loops 200 and keeps the best-on-test epoch), L2 1e-5 on conv / FC
# weights only (the loop's parameter groups exempt BatchNorm and biases).
RECIPE = Recipe(optimizer="adam", lr=1e-3, epochs=110, batch_size=128, schedule="exponential",
                gamma=0.96, weight_decay=1e-5)


def _infer(net: CrossInfoNet, batch: dict):
    """What a test run computes: the hand output only (the released test graph never runs the
    heat-map heads)."""
    return net(batch["depth"], with_heatmaps=False)


register_model(ModelSpec(
    name="crossinfonet",
    paper="Du, Lin, Sun, Ma. CrossInfoNet: Multi-Task Information Sharing Based Hand Pose "
          "Estimation. CVPR 2019",
    chapter="crossinfonet",
    variants={key: v.name for key, v in VARIANTS.items()},   # ids -> Table 1 labels
    default_variant=DEFAULT_VARIANT,
    build=build,
    loss=crossinfonet_loss,
    predict=predict,
    recipe=RECIPE,
    convention="nyu",
    infer=_infer,
    augmentation=training_augmentation,
    data_init=data_dependent_init,
    build_settings=("width",),
))
