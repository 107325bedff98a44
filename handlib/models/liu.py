"""Liu, Huang, Ye: SE-ResNet + stacked-hourglass 2D joint detection with spatial-attention depth
regression, after a hand-location network. No code was released; every choice below is the spec's
recommended reading of the paper (``specs/architectures.md`` §2.2), named where it is made.

Two stages, one registered model (``liu``) whose variants are the stages and the ablation of Fig. 3a/b:

=====================  ========================================================================
variant                network
=====================  ========================================================================
handloc                stage 1: CoM-centred crop → small SE-ResNet → 3D offset to the hand centre
plain                  one task: shallow layers → 4 stride-2 SE-ResBlocks → FC 3J (xyz)
two_branch             hourglasses for 2D detection; depth regressor on the raw shallow features
direct                 depth regressor on the last hourglass's 128-ch output features
attention              the paper's: regressor on σ(last-stack features) ⊙ shallow features (σ of the
                       features before their ReLU, so that the mask spans (0, 1))
attention_softmax      ours: the mask a per-channel spatial softmax instead of σ
attention_minmax       ours: the mask a per-channel min–max to [0, 1] instead of σ
=====================  ========================================================================

Stage 1 is scored as the labelled hand moved rigidly to its centre, so its "joint error" is its centre error
(labels enter the score only). Every pose variant runs on the crop the frozen hand-location network
re-centres (:func:`refine_crop`);
(u, v) come from the last stack's heat maps (argmax + Newell's quarter-cell shift), z from the
regressor, and the 2.5D (u, v, z) are back-projected with the camera and the inverse crop.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from handlib.data.crop import center_of_mass, depth_to_mm, foreground_mask, uncrop_joints
from handlib.dataset_registry import convention_camera
from handlib.geometry import (Camera, get_camera, normalize_joints, denormalize_joints,
                              transform_points_2d, uvd_to_xyz)
from handlib.joints import JointConvention, get_convention
from handlib.losses import gaussian_heatmap_targets
from handlib.models.blocks import ConvBN, Hourglass, SEResBlock, named_generator
from handlib.models.registry import ModelSpec, Upstream, register_model
from handlib.recipe import Recipe

INPUT_SIZE = 128            # the paper's pose-network input
WIDTH = 128                 # "128 feature channels in every layer" of the hourglasses
STACKS = 2
HOURGLASS_DEPTH = 4         # 64 → 32 → 16 → 8 → 4 at the paper's size
REGRESSOR_BLOCKS = 4        # stride-2 SE-ResBlocks of the depth regressor (64 → 4)
HEATMAP_SIGMA = 1.0         # map cells
# λ of L_reg: a zero prediction costs Σ_j ‖H^j‖² = J·πσ² ≈ 44 per stack in L_det and Σ_j z_j² ≈ 0.7 in the
# unweighted L_reg (measured in the chapter), so λ = 100 makes the two terms start alike, as the spec asks
# (§2.2 choice 7). Per-map sums instead of the spec's per-map means scale the whole loss by (S/2)²: Adam
# (the book profile) ignores a constant scale, SGD's learning rate does not.
REG_WEIGHT = 100.0
LOCATOR_WIDTHS = (32, 64, 128, 128)   # hand-location network: stride-2 SE-ResBlocks after its stem
MASKS = ("sigmoid", "softmax", "minmax")

# variant id -> (label in the chapter's tables, what the depth regressor reads, mask normalisation)
VARIANT_TABLE = {
    "handloc": ("Hand location (stage 1)", None, None),
    "plain": ("Plain one-task", None, None),
    "two_branch": ("Separate two-branch", "raw", None),
    "direct": ("Direct features", "hourglass", None),
    "attention": ("Ours (attention)", "masked", "sigmoid"),
    "attention_softmax": ("Attention, spatial softmax (ours)", "masked", "softmax"),
    "attention_minmax": ("Attention, min-max (ours)", "masked", "minmax"),
    "attention_detached": ("Attention, L_reg stopped at the mask (probe)", "masked", "sigmoid"),
}
# A probe, not the paper's: L_reg's gradient stops at the mask, so the hourglasses learn from the
# heat-map loss alone (as in the two-branch network) while the regressor still reads M ⊙ F_raw.
DETACHED_MASK = ("attention_detached",)
VARIANTS = {key: row[0] for key, row in VARIANT_TABLE.items()}
POSE_VARIANTS = tuple(v for v in VARIANTS if v != "handloc")
ABLATION = ("plain", "two_branch", "direct", "attention")     # Fig. 3a/b
DEFAULT_VARIANT = "attention"


def normalise_mask(features: torch.Tensor, how: str) -> torch.Tensor:
    """(B, C, H, W) features → masks M of the same shape: σ (the choice), a per-channel spatial
    softmax (each channel's mask sums to 1) or per-channel min–max to [0, 1]."""
    if how == "sigmoid":
        return torch.sigmoid(features)
    if how == "softmax":
        return torch.softmax(features.flatten(2).float(), dim=-1).reshape(features.shape).to(features.dtype)
    if how == "minmax":
        low = features.amin(dim=(-2, -1), keepdim=True)
        high = features.amax(dim=(-2, -1), keepdim=True)
        return (features - low) / (high - low).clamp(min=1e-6)
    raise ValueError(f"unknown mask normalisation {how!r}; expected one of {MASKS}")


class DepthRegressor(nn.Module):
    """The "simple network": ``blocks`` stride-2 SE-ResBlocks, then one linear layer to ``outputs``."""

    def __init__(self, channels: int, side: int, outputs: int, blocks: int = REGRESSOR_BLOCKS):
        super().__init__()
        if side % (1 << blocks):
            raise ValueError(f"regressor input side {side} is not divisible by 2**{blocks}")
        self.blocks = nn.Sequential(*(SEResBlock(channels, channels, stride=2) for _ in range(blocks)))
        self.out = nn.Linear(channels * (side >> blocks) ** 2, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.flatten(self.blocks(x), 1))


class StackHead(nn.Module):
    """After each hourglass: ResBlock → 1×1 conv-BN-ReLU (the stack's features) → 1×1 conv to J maps.

    Returns (features, heat maps, the features before their ReLU): the mask is normalised from the
    latter, since σ of a ReLU output never falls below ½ (it could at most halve a feature)."""

    def __init__(self, channels: int, num_joints: int):
        super().__init__()
        self.block = SEResBlock(channels, channels)
        self.features = ConvBN(channels, channels, 1)
        self.heatmaps = nn.Conv2d(channels, num_joints, 1)

    def forward(self, x: torch.Tensor):
        unit = self.features
        pre_activation = unit.bn(unit.conv(self.block(x)))
        features = F.relu(pre_activation)
        return features, self.heatmaps(features), pre_activation


class LiuPoseNet(nn.Module):
    """(B, 1, S, S) normalised depth crop → dict: ``heatmaps`` (B, stacks, J, S/2, S/2) and ``depth``
    (B, J) normalised joint depths (hourglass variants), or ``joints`` (B, J, 3) normalised xyz
    (``plain``). ``return_features`` adds ``shallow`` (F_raw), ``stack_features`` (list), and for the
    regressor's input ``regressor_input`` and (attention variants) ``mask``."""

    def __init__(self, variant: str = DEFAULT_VARIANT, convention: str | JointConvention = "nyu",
                 image_size: int = INPUT_SIZE, width: int = WIDTH, stacks: int = STACKS,
                 hourglass_depth: int = HOURGLASS_DEPTH):
        super().__init__()
        if variant not in POSE_VARIANTS:
            raise ValueError(f"unknown Liu pose variant {variant!r}; expected one of {POSE_VARIANTS}")
        side = image_size // 2
        if image_size % 2 or side % (1 << max(hourglass_depth, REGRESSOR_BLOCKS)):
            raise ValueError(f"image_size {image_size}: half of it must be divisible by "
                             f"{1 << max(hourglass_depth, REGRESSOR_BLOCKS)}")
        if width < 16 or width % 2:
            raise ValueError(f"width must be an even channel count >= 16, got {width}")
        self.variant = variant
        _, self.reads, self.mask = VARIANT_TABLE[variant]
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.camera: Camera = get_camera(convention_camera(self.convention.name))
        self.image_size, self.width, self.stacks = image_size, width, stacks
        joints = self.convention.num_joints
        # Shallow layers (choice 1): 7×7 stride-2 conv (width/2) → SE-ResBlock → SE-ResBlock: width × S/2².
        self.shallow = nn.Sequential(ConvBN(1, width // 2, 7, stride=2), SEResBlock(width // 2, width),
                                     SEResBlock(width, width))
        if variant == "plain":
            self.regressor = DepthRegressor(width, side, 3 * joints)
            return
        self.hourglasses = nn.ModuleList(Hourglass(hourglass_depth, width) for _ in range(stacks))
        self.heads = nn.ModuleList(StackHead(width, joints) for _ in range(stacks))
        # Between stacks: x ← x + 1×1(features) + 1×1(heat maps) (intermediate supervision fed back).
        self.merge_features = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(joints, width, 1) for _ in range(stacks - 1))
        self.regressor = DepthRegressor(width, side, joints)

    def forward(self, depth: torch.Tensor, return_features: bool = False) -> dict:
        if depth.dim() != 4 or depth.shape[1] != 1 or depth.shape[-1] != self.image_size \
                or depth.shape[-2] != self.image_size:
            raise ValueError(f"Liu pose network expects depth of shape (B, 1, {self.image_size}, "
                             f"{self.image_size}), got {tuple(depth.shape)}")
        shallow = self.shallow(depth)
        out: dict = {}
        features = {"shallow": shallow}
        if self.variant == "plain":
            out["joints"] = self.regressor(shallow).reshape(depth.shape[0], -1, 3)
            if return_features:
                out["features"] = features
            return out
        x, maps, stack_features = shallow, [], []
        for i, (hourglass, head) in enumerate(zip(self.hourglasses, self.heads)):
            feats, heatmaps, pre_activation = head(hourglass(x))
            stack_features.append(feats)
            maps.append(heatmaps)
            if i < self.stacks - 1:
                x = x + self.merge_features[i](feats) + self.merge_heatmaps[i](heatmaps)
        last = stack_features[-1]
        if self.reads == "raw":
            regressor_input = shallow
        elif self.reads == "hourglass":
            regressor_input = last
        else:                                  # F_reg = M ⊙ F_raw, M from the last stack's features before ReLU
            source = pre_activation.detach() if self.variant in DETACHED_MASK else pre_activation
            features["mask"] = mask = normalise_mask(source, self.mask)
            regressor_input = mask * shallow
        out["heatmaps"] = torch.stack(maps, dim=1)
        out["depth"] = self.regressor(regressor_input)
        if return_features:
            features.update(stack_features=stack_features, regressor_input=regressor_input,
                            pre_activation=pre_activation)
            out["features"] = features
        return out


class HandLocator(nn.Module):
    """Stage 1 (the spec's DeepPrior++ "ComRefNet" reading): a CoM-centred crop → 7×7 stride-2 stem →
    stride-2 SE-ResBlocks → global average → linear → the 3D offset from the crop centre to the hand
    centre (the joints' mean), in units of half the cube."""

    def __init__(self, convention: str | JointConvention = "nyu", image_size: int = INPUT_SIZE,
                 widths: tuple[int, ...] = LOCATOR_WIDTHS):
        super().__init__()
        self.variant = "handloc"
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.camera: Camera = get_camera(convention_camera(self.convention.name))
        self.image_size = image_size
        self.stem = ConvBN(1, widths[0], 7, stride=2)
        blocks, previous = [], widths[0]
        for w in widths:
            blocks.append(SEResBlock(previous, w, stride=2))
            previous = w
        self.blocks = nn.Sequential(*blocks)
        self.offset = nn.Linear(previous, 3)

    def forward(self, depth: torch.Tensor) -> dict:
        if depth.dim() != 4 or depth.shape[1] != 1 or depth.shape[-1] != self.image_size \
                or depth.shape[-2] != self.image_size:
            raise ValueError(f"hand-location network expects depth of shape (B, 1, {self.image_size}, "
                             f"{self.image_size}), got {tuple(depth.shape)}")
        pooled = self.blocks(self.stem(depth)).mean(dim=(-2, -1))
        # In fp32 even under autocast: bf16's 8-bit mantissa would cost up to ~0.5 mm of centre.
        with torch.autocast(depth.device.type, enabled=False):
            return {"offset": self.offset(pooled.float())}


def torch_default_init(model: nn.Module, seed: int | None = None) -> None:
    """PyTorch's default initialisation (the paper trains in PyTorch and names no other): conv / linear
    weights U(±√(1/fan_in)) (kaiming-uniform, a = √5), biases U(±1/√fan_in), BN γ = 1, β = 0; each
    tensor drawn from its own (seed, layer name) generator, so variants sharing a layer start it alike
    (paired comparisons, as :func:`handlib.models.blocks.xavier_init`)."""
    base = torch.initial_seed() if seed is None else seed
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                g = named_generator(base, name)
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                module.weight.uniform_(-bound, bound, generator=g)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=g)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)


def build(variant: str = DEFAULT_VARIANT, convention: str | JointConvention = "nyu",
          image_size: int = INPUT_SIZE, width: int = WIDTH) -> nn.Module:
    """``width``: the profile setting of that name (hourglass channels; the paper's 128)."""
    net = (HandLocator(convention, image_size) if variant == "handloc"
           else LiuPoseNet(variant, convention, image_size, width))
    torch_default_init(net)
    if isinstance(net, LiuPoseNet) and net.variant != "plain":
        zero_heatmap_outputs(net)
    return net


@torch.no_grad()
def zero_heatmap_outputs(net: LiuPoseNet) -> None:
    """Start every heat-map output conv at zero (ours): PyTorch's default init makes the first maps cost
    about 50x the targets' own energy under L_det, and the first hundred steps go to shrinking them
    (measured in the chapter); from zero, the first maps cost exactly the targets' energy."""
    for head in net.heads:
        head.heatmaps.weight.zero_()
        head.heatmaps.bias.zero_()


# --- 2D maps to 3D joints -------------------------------------------------------------------------

def decode_heatmaps(heatmaps: torch.Tensor, image_size: int) -> torch.Tensor:
    """(B, J, H, W) maps → (B, J, 2) crop pixels (u, v): the argmax cell plus Newell's quarter-cell
    shift toward the larger neighbour along each axis, mapped back by (m + ½)·S/H − ½."""
    b, j, h, w = heatmaps.shape
    flat = heatmaps.detach().float().flatten(2)
    index = flat.argmax(-1)
    y, x = index // w, index % w

    def at(yy, xx):
        return flat.gather(-1, (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).unsqueeze(-1)).squeeze(-1)

    dx = 0.25 * torch.sign(at(y, x + 1) - at(y, x - 1))
    dy = 0.25 * torch.sign(at(y + 1, x) - at(y - 1, x))
    cells = torch.stack((x + dx, y + dy), dim=-1)
    return (cells + 0.5) * (image_size / w) - 0.5


def joints_from_2d(uv_crop: torch.Tensor, depth_norm: torch.Tensor, batch: dict, camera: Camera) -> torch.Tensor:
    """(B, J, 2) crop pixels + (B, J) normalised depth → (B, J, 3) camera mm: the inverse crop to full-image
    pixels, then the camera's back-projection."""
    crop = torch.cat((uv_crop.double(), depth_norm.detach().double().unsqueeze(-1)), dim=-1)
    uvd = uncrop_joints(crop, batch["transform"].double(), batch["com"][:, 2].double(),
                        batch["cube"][:, 2].double())
    return uvd_to_xyz(uvd, camera)


def _reference(batch: dict):
    """The centre and cube the loop scores against: those of the batch before any re-crop."""
    return batch.get("reference_com", batch["com"]), batch.get("reference_cube", batch["cube"])


# --- the crops: CoM-centred (stage 1's input) and refined (stage 2's) ------------------------------

def pixel_centre_of_mass(batch: dict, camera: Camera) -> torch.Tensor:
    """(B, 3) camera mm: the centre of mass of each crop's hand pixels (mean u, v and depth, DeepPrior's
    ``calculateCoM``), back through the inverse crop; the crop centre where no pixel."""
    depth = batch["depth"][:, 0].double()
    hand_mm = depth_to_mm(torch.where(foreground_mask(depth), depth, torch.ones_like(depth)),
                          batch["com"][:, 2], batch["cube"][:, 2])              # background -> 0 mm
    com_crop, count = center_of_mass(hand_mm, min_depth=0.0, max_depth=math.inf)
    uvd = transform_points_2d(com_crop.unsqueeze(1), torch.linalg.inv(batch["transform"].double()))
    com = uvd_to_xyz(uvd[:, 0], camera)
    return torch.where((count > 0).unsqueeze(-1), com, batch["com"].double())


def recentre(batch: dict, camera: Camera, centre: torch.Tensor) -> dict:
    """``batch`` re-cropped around ``centre`` (B, 3) mm with the same cubes (a perspective re-warp of
    the crop: pixels beyond the original crop become background); the original centre and cube are kept
    as ``reference_com`` / ``reference_cube``, which predictions are scored against."""
    from handlib.data.augment import warp_batch

    b = batch["depth"].shape[0]
    com, cube = _reference(batch)
    zeros = torch.zeros(b, dtype=torch.float64, device=centre.device)
    out = warp_batch(batch, camera, centre.double(), batch["cube"].double(), zeros,
                     torch.ones(b, dtype=torch.bool, device=centre.device))
    out["reference_com"], out["reference_cube"] = com, cube
    return out


def com_crop(batch: dict, camera: Camera) -> dict:
    """Stage 1's input: the batch re-cropped around its hand pixels' centre of mass."""
    return recentre(batch, camera, pixel_centre_of_mass(batch, camera))


def hand_centre(batch: dict) -> torch.Tensor:
    """(B, 3) mm: the hand centre stage 1 learns to find (the mean of the labelled joints)."""
    return batch["joints_xyz"].double().mean(dim=1)


def refined_centre(locator: HandLocator, batch: dict) -> tuple[torch.Tensor, dict]:
    """Stage 1 at test time: ((B, 3) refined centre in mm, the CoM-centred batch it looked at). The crop
    starts from is the dataset's (on synthetic data centred on a label, see the chapter): only its pixels
    are read here."""
    first = com_crop(batch, locator.camera)
    # Beyond half a cube from the CoM the crop would lose the hand: a diverged locator cannot move it there.
    offset = torch.nan_to_num(locator(first["depth"])["offset"].double()).clamp(-1, 1)
    return first["com"].double() + offset * first["cube"].double() / 2, first


def refine_crop(locator: HandLocator, batch: dict) -> dict:
    """The upstream ``attach``: the batch re-cropped around the frozen locator's refined centre."""
    centre, _ = refined_centre(locator, batch)
    return recentre(batch, locator.camera, centre)


# --- the training graph, losses and predictions ------------------------------------------------------

def forward(net: nn.Module, batch: dict) -> dict:
    """The network's outputs on the batch it is given (already re-centred by stage 1 when staged) plus
    ``seen``, the batch the network saw (the loss's targets); stage 1 sees the CoM-centred crop. In eval mode
    also ``joints_norm``: the predicted joints normalised by the reference centre and cube (what the loop
    scores; decoding is skipped while training, where only the loss is needed)."""
    if "transform" not in batch:            # a bare input (summary, bench): no crop geometry to use
        return net(batch["depth"])
    if isinstance(net, HandLocator):
        if net.training:                    # the loss needs the raw offset and the crop it came from
            first = com_crop(batch, net.camera)
            out = net(first["depth"])
            out["seen"] = first
            return out
        centre, first = refined_centre(net, batch)     # exactly the centre stage 2 is given
        offset = (centre - first["com"].double()) / (first["cube"].double() / 2)
        out = {"offset": offset.float(), "centre": centre, "seen": first}
        # Scored as the labelled hand moved rigidly to the predicted centre: every joint's error is then
        # the centre's error (what a perfect stage 2 would make from this centre).
        com, cube = _reference(batch)
        placed = batch["joints_xyz"].double() - hand_centre(batch).unsqueeze(1) + centre.unsqueeze(1)
        out["joints_norm"] = normalize_joints(placed, com.double(), cube.double()).float()
        return out
    out = net(batch["depth"])
    out["seen"] = batch
    if net.training:                        # the loss uses the raw outputs; scoring happens in eval mode
        return out
    com, cube = _reference(batch)
    if "joints" in out:
        xyz = denormalize_joints(out["joints"].double(), batch["com"].double(), batch["cube"].double())
    else:
        uv = decode_heatmaps(out["heatmaps"][:, -1], net.image_size)
        xyz = joints_from_2d(uv, out["depth"], batch, net.camera)
    out["joints_norm"] = normalize_joints(xyz, com.double(), cube.double()).float()
    return out


def loss(outputs: dict, batch: dict) -> dict:
    """Eq. 1, L = Σ_stacks L_det + L_reg, read literally: L_det = Σ_j ‖H_o^j − H_g^j‖² (squared L2 norm of
    each map's difference: a sum over pixels) against σ = 1 Gaussians, per stack; L_reg = λ·Σ_j (z_j − ẑ_j)²
    of the normalised joint depths, with λ = ``REG_WEIGHT`` balancing the two terms' zero-prediction sizes
    (the chapter measures them). The ``plain`` network: λ·Σ_j ‖j − ĵ‖² of its normalised xyz; stage 1:
    Σ (offset − target)². Batch means; targets come from the batch the network saw (``outputs["seen"]``)."""
    seen = outputs.get("seen", batch)
    if "offset" in outputs:
        target = (hand_centre(seen) - seen["com"].double()) / (seen["cube"].double() / 2)
        l_loc = (outputs["offset"].float() - target.float()).pow(2).sum(-1).mean()
        return {"L_loc": l_loc, "total": l_loc}
    if "joints" in outputs:
        l_reg = REG_WEIGHT * (outputs["joints"].float() - seen["joints"].float()).pow(2).sum((-2, -1)).mean()
        return {"L_reg": l_reg, "total": l_reg}
    maps = outputs["heatmaps"]
    targets = gaussian_heatmap_targets(seen["joints_crop"], seen["depth"].shape[-1], maps.shape[-1],
                                       HEATMAP_SIGMA)
    terms = {}
    total = 0.0
    for s in range(maps.shape[1]):
        terms[f"L_det{s + 1}"] = (maps[:, s].float() - targets).pow(2).sum((-3, -2, -1)).mean()
        total = total + terms[f"L_det{s + 1}"]
    depth_error = outputs["depth"].float() - seen["joints_crop"][..., 2].float()
    terms["L_reg"] = REG_WEIGHT * depth_error.pow(2).sum(-1).mean()
    terms["total"] = total + terms["L_reg"]
    return terms


def predict(outputs: dict) -> torch.Tensor:
    """(B, J, 3) joints normalised by the reference centre and cube (stage 1: the labelled hand placed at
    its centre, so that its "joint error" is its centre error)."""
    return outputs["joints_norm"]


# The paper (§4): PyTorch, SGD, momentum 0.9, weight decay 5e-5, batch 32, lr 0.1 divided by 10 twice; the
# epochs are not given: ours (the spec's example), 30 epochs with drops after 15 and 25. The rate 0.1 goes
# with a per-element mean loss (PyTorch's MSELoss; the spec's per-map means), which our per-map sums exceed
# by (S/2)² = 4096 at the paper's size: the same SGD steps need 0.1 / 4096 (in the book's probes SGD at 0.1
# on the sums diverged).
PAPER_LR = 0.1
RECIPE = Recipe(optimizer="sgd", lr=PAPER_LR / (INPUT_SIZE // 2) ** 2, momentum=0.9, weight_decay=5e-5,
                batch_size=32, epochs=30, schedule="step", gamma=0.1, milestones=(15, 25))

STAGE1 = Upstream("liu", "handloc", attach=refine_crop)

SPEC = register_model(ModelSpec(
    name="liu",
    paper="Liu, Huang, Ye. Networks effectively utilising 2D spatial information for accurate 3D hand "
          "pose estimation (SE-ResNet + stacked hourglass + spatial attention)",
    chapter="liu",
    variants=VARIANTS,
    default_variant=DEFAULT_VARIANT,
    build=build,
    loss=loss,
    predict=predict,
    recipe=RECIPE,
    convention="nyu",
    input_size=INPUT_SIZE,
    forward=forward,
    upstream=STAGE1,
    # stage 1's loss is a plain squared error of 3 numbers: the paper's rate as it is
    variant_overrides={"handloc": {"upstream": None, "recipe": replace(RECIPE, lr=PAPER_LR)}},
    build_settings=("width",),
))
