"""CADSTN (Wu, Ji, Li, Wang, Yin, Wu: context-aware deep spatio-temporal network, IEEE T-Cybernetics)
as the released Caffe prototxts build it (``weleen/CADSTN.caffe``, ``models/NYU/hand_*``).

Five networks, one variant each (the rows of the paper's Table IV):

===========  ===================================================================  ============
variant      network                                                              input
===========  ===================================================================  ============
baseline     depth trunk → FC1024 → FC1024 → 3K                                    frame
sliced3d     sliced-volume trunk (3×3 then 1×1 convs) → FC1024 → FC1024 → 3K         frame
spatial      both trunks, deeply fused (φ0, φ1, φ2 averages), + 2 auxiliary paths   frame
temporal     the baseline's trunk + FC1, frozen → LSTM(1024) → [h_t, φ_t] → 3K        16-frame clip
cadstn       spatial and temporal frozen + a gate network: w1 = σ(gate(crop))         16-frame clip
             J = w1 ⊙ J_temporal + (1 − w1) ⊙ J_spatial
===========  ===================================================================  ============

No BatchNorm anywhere. Caffe conventions translated here: ``xavier`` fills U(±√(3 / fan_in)) (Caffe's
default ``variance_norm: FAN_IN``, not PyTorch's Glorot), biases 0, the regression outputs of the
single-frame networks N(0, 0.001), the LSTM's weights U(±0.01); Caffe's LSTM has one bias where
PyTorch has two, so ``bias_hh`` stays 0 and frozen. ``lr_mult`` / ``decay_mult`` of every blob are
:meth:`multipliers` of each network (read by the training loop's parameter groups).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from handlib.data.crop import foreground_mask
from handlib.joints import JointConvention, get_convention
from handlib.models.blocks import named_generator
from handlib.models.registry import ModelSpec, Upstream, register_model
from handlib.recipe import Recipe

SLICES = 8                    # L: binary depth slices of the sliced 3D volume
CLIP_LENGTH = 16              # T: frames per clip of the temporal and fusion networks
INPUT_SIZE = 128              # the code's crop size
TRUNK = ((32, 4), (64, 2), (128, 2))   # (channels, max-pool size and stride) of each trunk stage
FC_UNITS = 1024
FC_DROPOUT = 0.3
LSTM_UNITS = 1024
LSTM_DROPOUT = 0.5
OUTPUT_STD = 0.001            # Gaussian filler of the single-frame networks' regression layer
LSTM_RANGE = 0.01             # uniform filler of the LSTM weights


def slice_volume(depth: torch.Tensor, slices: int = SLICES) -> torch.Tensor:
    """(..., 1, S, S) normalised crops -> (..., ``slices``, S, S) binary slices (the sliced 3D volume).

    As the released code bins the cropped depth: over the hand pixels (background is +1 in the
    normalised crop) D_min and D_max split [D_min, D_max] into ``slices`` equal bins, a pixel at D_max
    falls into the last bin, and each hand pixel is 1 in exactly one slice. The normalised depth is an
    increasing affine map of the millimetres, so the bins are the code's."""
    if depth.dim() < 3 or depth.shape[-3] != 1:
        raise ValueError(f"depth must have shape (..., 1, S, S), got {tuple(depth.shape)}")
    d = depth[..., 0, :, :]
    hand = foreground_mask(d)          # background is +1 only up to float rounding
    low = torch.where(hand, d, torch.full_like(d, math.inf)).amin(dim=(-2, -1), keepdim=True)
    high = torch.where(hand, d, torch.full_like(d, -math.inf)).amax(dim=(-2, -1), keepdim=True)
    span = (high - low).clamp(min=1e-12)       # one depth only: every hand pixel in the first bin
    index = ((d - low) / span * slices).floor().clamp(0, slices - 1)
    levels = torch.arange(slices, device=depth.device, dtype=index.dtype).view(slices, 1, 1)
    return ((index.unsqueeze(-3) == levels) & hand.unsqueeze(-3)).to(depth.dtype)


class Trunk(nn.Module):
    """The conv trunk: per stage a 3×3 conv (pad 1), ReLU, max-pool (4, 2, 2) -> 128 × S/16 × S/16.

    ``sliced=True`` is the sliced-volume trunk: each 3×3 conv is followed at once by a 1×1 conv of the
    same width, with the ReLU only after the 1×1 (the code has no non-linearity between them)."""

    def __init__(self, in_channels: int = 1, sliced: bool = False):
        super().__init__()
        stages, channels = [], in_channels
        for width, pool in TRUNK:
            layers = [nn.Conv2d(channels, width, 3, padding=1)]
            if sliced:
                layers.append(nn.Conv2d(width, width, 1))
            stages.append(nn.Sequential(*layers, nn.ReLU(inplace=True), nn.MaxPool2d(pool, pool)))
            channels = width
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x).flatten(1)


def feature_size(image_size: int) -> int:
    """Length of the trunk's flattened output: 128 channels × (S / 16)² (8,192 at the code's 128)."""
    if image_size % 16:
        raise ValueError(f"image_size must be a multiple of 16 (the trunk pools by 4, 2, 2), got {image_size}")
    return TRUNK[-1][0] * (image_size // 16) ** 2


def _fc(layer: nn.Linear, x: torch.Tensor, dropout: nn.Dropout) -> torch.Tensor:
    """InnerProduct → ReLU → Dropout, the code's FC unit."""
    return dropout(F.relu(layer(x)))


class _Caffe(nn.Module):
    """Shared by the networks: output shape, Caffe-style init, lr / decay multipliers."""

    def __init__(self, convention: str | JointConvention):
        super().__init__()
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.num_joints = self.convention.num_joints

    def as_joints(self, flat: torch.Tensor) -> torch.Tensor:
        return flat.reshape(*flat.shape[:-1], self.num_joints, 3)

    # Per-layer Caffe settings: {layer or parameter name: (lr_mult, decay_mult)} where the prototxt
    # departs from the default (1, 1), for biases and for weights.
    BIAS_MULT: dict[str, tuple[float, float]] = {}
    WEIGHT_MULT: dict[str, tuple[float, float]] = {}

    def multipliers(self) -> dict[str, tuple[float, float]]:
        """(lr_mult, decay_mult) of every trainable parameter, by name, as the prototxt sets them."""
        out = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            table = self.BIAS_MULT if name.endswith(".bias") else self.WEIGHT_MULT
            out[name] = next((m for key, m in table.items() if name == key or name.startswith(key + ".")),
                             (1.0, 1.0))
        return out

    def reset_parameters(self, seed: int | None = None, gaussian: tuple[str, ...] = ()) -> None:
        """Caffe fillers: ``xavier`` U(±√(3 / fan_in)) for every conv / FC weight, N(0, 0.001) for the
        layers named in ``gaussian``, U(±0.01) for LSTM weights, all biases 0. Each layer draws from its
        own generator keyed by (seed, qualified name), so variants start shared layers equal."""
        base = torch.initial_seed() if seed is None else seed
        with torch.no_grad():
            for name, module in self.named_modules():
                generator = named_generator(base, name)
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    if name in gaussian:
                        module.weight.normal_(0.0, OUTPUT_STD, generator=generator)
                    else:
                        bound = math.sqrt(3.0 / module.weight[0].numel())
                        module.weight.uniform_(-bound, bound, generator=generator)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.LSTM):
                    for pname, param in module.named_parameters():
                        if pname.startswith("weight"):
                            param.uniform_(-LSTM_RANGE, LSTM_RANGE, generator=generator)
                        else:
                            param.zero_()


class Baseline(_Caffe):
    """``hand_baseline`` (and, with ``sliced=True``, ``hand_3D``): trunk → FC1024 → FC1024 → 3K.

    Input: (B, 1, S, S) normalised crops; the sliced network slices them itself (:func:`slice_volume`).
    Output: ``{"joints": (B, J, 3)}`` normalised joints."""

    def __init__(self, convention="nyu", image_size: int = INPUT_SIZE, sliced: bool = False,
                 seed: int | None = None, gaussian_output: bool = True):
        super().__init__(convention)
        self.sliced = sliced
        self.trunk = Trunk(SLICES if sliced else 1, sliced=sliced)
        self.fc1 = nn.Linear(feature_size(image_size), FC_UNITS)
        self.fc2 = nn.Linear(FC_UNITS, FC_UNITS)
        self.out = nn.Linear(FC_UNITS, 3 * self.num_joints)
        self.drop1, self.drop2 = nn.Dropout(FC_DROPOUT), nn.Dropout(FC_DROPOUT)
        if sliced:   # hand_3D: every conv bias lr_mult 2, decay_mult 0
            self.BIAS_MULT = {"trunk": (2.0, 0.0)}
        # the regression layer is N(0, 0.001); the gate's output layer ("weight") is xavier
        self.reset_parameters(seed, gaussian=("out",) if gaussian_output else ())

    def features(self, depth: torch.Tensor) -> torch.Tensor:
        """φ: FC1's output after ReLU and dropout (what the temporal network reads)."""
        x = slice_volume(depth) if self.sliced else depth
        return _fc(self.fc1, self.trunk(x), self.drop1)

    def forward(self, depth: torch.Tensor) -> dict:
        return {"joints": self.as_joints(self.out(_fc(self.fc2, self.features(depth), self.drop2)))}


class Spatial(_Caffe):
    """``hand_3D_and_depth``: the depth and sliced-volume trunks, deeply fused.

    φ0 = ½(φ_depth + φ_3D); φ1 = ½(FC1(φ0) + FC1_3D(φ0)); φ2 = ½(FC2(φ1) + FC2_3D(φ1)) (each FC with
    ReLU and its own dropout 0.3); J = out(φ2). In training (``with_aux=True``) two auxiliary paths run
    each trunk alone through the **same** FC1 / FC2 (or FC1_3D / FC2_3D) layers into their own output
    layers: ``aux_depth``, ``aux_volume``. At test time they are not computed."""

    BIAS_MULT = {"fc1": (2.0, 1.0), "fc2": (2.0, 1.0), "fc1_3d": (2.0, 1.0), "fc2_3d": (2.0, 1.0),
                 "out": (2.0, 1.0), "aux_out_depth": (2.0, 1.0), "aux_out_volume": (2.0, 1.0)}

    def __init__(self, convention="nyu", image_size: int = INPUT_SIZE, seed: int | None = None):
        super().__init__(convention)
        size = feature_size(image_size)
        self.trunk = Trunk(1)
        self.trunk_3d = Trunk(SLICES, sliced=True)
        self.fc1, self.fc1_3d = nn.Linear(size, FC_UNITS), nn.Linear(size, FC_UNITS)
        self.fc2, self.fc2_3d = nn.Linear(FC_UNITS, FC_UNITS), nn.Linear(FC_UNITS, FC_UNITS)
        self.out = nn.Linear(FC_UNITS, 3 * self.num_joints)
        self.aux_out_depth = nn.Linear(FC_UNITS, 3 * self.num_joints)
        self.aux_out_volume = nn.Linear(FC_UNITS, 3 * self.num_joints)
        # One dropout per Caffe layer (each draws its own mask): main path 4, auxiliary paths 4.
        self.drops = nn.ModuleList(nn.Dropout(FC_DROPOUT) for _ in range(8))
        self.reset_parameters(seed, gaussian=("out",))   # the auxiliary outputs are xavier in the code

    def forward(self, depth: torch.Tensor, with_aux: bool = True) -> dict:
        phi_depth, phi_volume = self.trunk(depth), self.trunk_3d(slice_volume(depth))
        d = self.drops
        phi0 = 0.5 * (phi_depth + phi_volume)
        phi1 = 0.5 * (_fc(self.fc1, phi0, d[0]) + _fc(self.fc1_3d, phi0, d[1]))
        phi2 = 0.5 * (_fc(self.fc2, phi1, d[2]) + _fc(self.fc2_3d, phi1, d[3]))
        outputs = {"joints": self.as_joints(self.out(phi2))}
        if with_aux:
            alone_depth = _fc(self.fc2, _fc(self.fc1, phi_depth, d[4]), d[5])
            alone_volume = _fc(self.fc2_3d, _fc(self.fc1_3d, phi_volume, d[6]), d[7])
            outputs["aux_depth"] = self.as_joints(self.aux_out_depth(alone_depth))
            outputs["aux_volume"] = self.as_joints(self.aux_out_volume(alone_volume))
        return outputs


class Temporal(_Caffe):
    """``hand_lstm``: the trained baseline's trunk and FC1, frozen (lr_mult 0), give φ_t per frame;
    an LSTM(1024) runs over each clip from a zero state (the clip markers' reset); dropout 0.5 on h_t;
    J_t = out([h_t, φ_t]).

    Input (B, T, 1, S, S) clips; output ``{"joints": (B, T, J, 3)}``. The frozen layers keep their
    names (``trunk``, ``fc1``) so the baseline's weights load into them (:func:`embed_baseline`)."""

    WEIGHT_MULT = {"lstm.weight_ih_l0": (10.0, 1.0)}     # the first LSTM blob (W_xc): lr_mult 10
    BIAS_MULT = {"out": (2.0, 0.0)}

    def __init__(self, convention="nyu", image_size: int = INPUT_SIZE, seed: int | None = None):
        super().__init__(convention)
        self.trunk = Trunk(1)
        self.fc1 = nn.Linear(feature_size(image_size), FC_UNITS)
        self.feature_drop = nn.Dropout(FC_DROPOUT)        # the baseline's DropoutFC1, active in training
        self.lstm = nn.LSTM(FC_UNITS, LSTM_UNITS, batch_first=True)
        self.lstm_drop = nn.Dropout(LSTM_DROPOUT)
        self.out = nn.Linear(LSTM_UNITS + FC_UNITS, 3 * self.num_joints)
        self.reset_parameters(seed)                        # pred_joint_lstm is xavier in the code
        for module in (self.trunk, self.fc1):
            module.requires_grad_(False)
        self.lstm.bias_hh_l0.requires_grad_(False)         # Caffe's LSTM has one bias

    def forward(self, clips: torch.Tensor) -> dict:
        if clips.dim() != 5:
            raise ValueError(f"Temporal takes clips (B, T, 1, S, S), got {tuple(clips.shape)}")
        batch, steps = clips.shape[:2]
        phi = F.relu(self.fc1(self.trunk(clips.flatten(0, 1)))).reshape(batch, steps, -1)
        phi = self.feature_drop(phi)
        hidden, _ = self.lstm(phi)                          # zero initial state: reset per clip
        flat = self.out(torch.cat((self.lstm_drop(hidden), phi), dim=-1))
        return {"joints": self.as_joints(flat)}


class Fusion(_Caffe):
    """``hand_mix`` (CADSTN): the trained spatial and temporal networks, frozen and in eval mode, and a
    gate network (the baseline's architecture, its own weights) whose 3K outputs pass a sigmoid:
    w1 = σ(gate(crop)) weighs the temporal prediction, 1 − w1 the spatial one, per coordinate.

    Input (B, T, 1, S, S) clips; outputs ``joints`` (B, T, J, 3), ``temporal``, ``spatial`` (the two
    frozen predictions) and ``w_temporal`` (w1, (B, T, J, 3))."""

    BIAS_MULT = {"gate.fc1": (2.0, 1.0), "gate.fc2": (2.0, 1.0)}

    def __init__(self, convention="nyu", image_size: int = INPUT_SIZE, seed: int | None = None):
        super().__init__(convention)
        self.spatial = Spatial(convention, image_size, seed)
        self.temporal = Temporal(convention, image_size, seed)
        self.gate = Baseline(convention, image_size, seed=seed, gaussian_output=False)
        for module in (self.spatial, self.temporal):
            module.requires_grad_(False)

    def train(self, mode: bool = True):
        """The frozen networks stay in eval mode (deterministic inputs to the gate; Caffe's TRAIN phase
        would keep their dropout on)."""
        super().train(mode)
        self.spatial.eval()
        self.temporal.eval()
        return self

    def forward(self, clips: torch.Tensor) -> dict:
        batch, steps = clips.shape[:2]
        frames = clips.flatten(0, 1)
        with torch.no_grad():
            temporal = self.temporal(clips)["joints"]
            spatial = self.spatial(frames, with_aux=False)["joints"].reshape(temporal.shape)
        w = torch.sigmoid(self.gate(frames)["joints"]).reshape(temporal.shape)
        return {"joints": w * temporal + (1 - w) * spatial, "w_temporal": w,
                "temporal": temporal, "spatial": spatial}


def fixed_mix(temporal: torch.Tensor, spatial: torch.Tensor, w: float) -> torch.Tensor:
    """Table V: J = w · J_temporal + (1 − w) · J_spatial with one constant w for every coordinate."""
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"w must lie in [0, 1], got {w}")
    return w * temporal + (1 - w) * spatial


# --- building, losses and the registry entry ----------------------------------------------------------

# Table IV's rows, in the paper's order (ids -> labels).
VARIANTS = {"sliced3d": "Sliced 3D Input", "baseline": "Baseline Regression", "temporal": "Temporal",
            "spatial": "Spatial", "cadstn": "CADSTN"}
DEFAULT_VARIANT = "cadstn"


def build(variant: str = DEFAULT_VARIANT, convention: str | JointConvention = "nyu",
          image_size: int = INPUT_SIZE) -> nn.Module:
    """The network of one Table IV row (untrained; the temporal and fusion networks' frozen parts are
    filled from their trained upstream runs by :data:`SPEC`'s stages)."""
    if variant in ("baseline", "sliced3d"):
        return Baseline(convention, image_size, sliced=variant == "sliced3d")
    if variant == "spatial":
        return Spatial(convention, image_size)
    if variant == "temporal":
        return Temporal(convention, image_size)
    if variant == "cadstn":
        return Fusion(convention, image_size)
    raise ValueError(f"unknown CADSTN variant {variant!r}; expected one of {', '.join(VARIANTS)}")


def euclidean_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Caffe's EuclideanLoss, ½·Σ(pred − target)² / N, N = frames (a clip's T frames count as T)."""
    return 0.5 * (pred.float() - target).pow(2).flatten(-2).sum(-1).mean()


def loss(outputs: dict, batch: dict) -> dict:
    """The code's losses: the Euclidean loss on the prediction, plus (Spatial, training) one per
    auxiliary path, all of weight 1. Targets are the normalised joints clipped to [−1, 1], as the
    code's labels are."""
    target = batch["joints"].clamp(-1.0, 1.0)
    terms = {"joints": euclidean_loss(outputs["joints"], target)}
    for name in ("aux_depth", "aux_volume"):
        if name in outputs:
            terms[name] = euclidean_loss(outputs[name], target)
    terms["total"] = sum(terms.values())
    return terms


def temporal_loss(outputs: dict, batch: dict) -> dict:
    """The temporal network's EuclideanLoss as Caffe computes it on (T, N, 3K) blobs: it divides by the
    first axis only, so ½·Σ(pred − target)² / T, a sum over the batch's clips (N times the per-frame
    mean). Under Adam this leaves the step size alone but weakens the coupled weight decay by N."""
    target = batch["joints"].clamp(-1.0, 1.0)
    pred = outputs["joints"].float()
    joints = 0.5 * (pred - target).pow(2).sum() / pred.shape[1]
    return {"joints": joints, "total": joints}


def predict(outputs: dict) -> torch.Tensor:
    return outputs["joints"]


def embed_baseline(temporal: Temporal, baseline: Baseline) -> None:
    """The temporal network's frozen trunk and FC1 = the trained baseline's (the code copies them)."""
    temporal.trunk.load_state_dict(baseline.trunk.state_dict())
    temporal.fc1.load_state_dict(baseline.fc1.state_dict())


def embed_spatial(fusion: Fusion, spatial: Spatial) -> None:
    fusion.spatial.load_state_dict(spatial.state_dict())


def embed_temporal(fusion: Fusion, temporal: Temporal) -> None:
    fusion.temporal.load_state_dict(temporal.state_dict())


def copy_rotation(index: torch.Tensor) -> torch.Tensor:
    """The rotation (90, 180 or 270 degrees) of frame ``index``'s one augmented copy: fixed per frame,
    as the code's offline cache is (a multiplicative hash of the index, so neighbours differ)."""
    return 90.0 * (1 + (index.long() * 2654435761) % (2 ** 32) % 3)


def training_augmentation(dataset: str):
    """The code's augmentation for the single-frame networks on real data: the training set plus one
    copy of every frame rotated by a random multiple of 90 degrees (fixed per frame, :func:`copy_rotation`),
    batches drawn from both. As a batch transform: each sample is, with probability 1/2, replaced by its
    copy (the coin from torch's global RNG, which checkpoints save). None for the synthetic hands, whose
    renderer draws every rotation already; the temporal and fusion networks never augment."""
    from handlib.dataset_registry import get_dataset

    if get_dataset(dataset).synthetic:      # rendered hands (synthetic or real-like)
        return None
    from handlib.data.augment import rotate_batch
    from handlib.geometry import get_camera

    camera = get_camera(dataset)

    def augment(batch: dict) -> dict:
        use_copy = torch.rand(batch["depth"].shape[0]) < 0.5
        angle = torch.where(use_copy, copy_rotation(batch["index"].cpu()), torch.zeros(()))
        return rotate_batch(batch, camera, angle)
    return augment


def _infer_spatial(net: Spatial, batch: dict) -> dict:
    """The test graph: the auxiliary paths are not computed."""
    return net(batch["depth"], with_aux=False)


# The released NYU solvers (models/NYU/*/solver_*.prototxt): Adam (0.9, 0.999), weight decay 5e-4 (scaled
# per blob by decay_mult), lr x 0.1 every 20k iterations. Epochs count NYU's 72,757 training frames: the
# single-frame networks draw batches of 128 from them and their rotated copies (one per frame; here a coin
# per sample picks the frame or its copy, so an epoch is 72,757 draws): 100k iterations = 176 epochs, a decay
# every 35; the temporal network takes 32 of the 4,547 non-overlapping clips (100k iterations = 704 epochs,
# a decay every 141); the fusion network 8 clips (60k iterations = 106 epochs, a decay every 35; the code
# draws 8 windows starting at any frame, we take the non-overlapping clips).
FRAME_RECIPE = Recipe(optimizer="adam", lr=1e-3, epochs=176, batch_size=128, schedule="step", gamma=0.1,
                      milestones=(35, 70, 106, 141), weight_decay=5e-4, decay_norm_and_bias=True)
TEMPORAL_RECIPE = Recipe(optimizer="adam", lr=1e-4, epochs=704, batch_size=32, schedule="step", gamma=0.1,
                         milestones=(141, 282, 422, 563), weight_decay=5e-4, decay_norm_and_bias=True)
FUSION_RECIPE = Recipe(optimizer="adam", lr=1e-3, epochs=106, batch_size=8, schedule="step", gamma=0.1,
                       milestones=(35, 70), weight_decay=5e-4, decay_norm_and_bias=True)

_CLIP_NETWORK = {"input_kind": "clip", "data": "clips"}

SPEC = register_model(ModelSpec(
    name="cadstn",
    paper="Wu, Ji, Li, Wang, Yin, Wu. Context-Aware Deep Spatio-Temporal Network for Hand Pose "
          "Estimation from Depth Images. IEEE Transactions on Cybernetics, 2020",
    chapter="cadstn",
    variants=VARIANTS,
    default_variant=DEFAULT_VARIANT,
    build=build,
    loss=loss,
    predict=predict,
    recipe=FRAME_RECIPE,
    convention="nyu",
    input_size=INPUT_SIZE,
    # Every network trains and is tested on the frames of the same clips: the single-frame ones one
    # frame at a time, so all five rows of Table IV are scored on the same frames.
    data="clip_frames",
    clip_length=CLIP_LENGTH,
    # Real data as the code reads it: non-overlapping training clips, the test sequences concatenated
    # into 16-frame clips, the last one padded (its padding never scored).
    clip_stride=CLIP_LENGTH,
    test_clips="concatenated",
    augmentation=training_augmentation,
    variant_overrides={
        "spatial": {"infer": _infer_spatial},
        "temporal": {**_CLIP_NETWORK, "augmentation": None, "recipe": TEMPORAL_RECIPE, "loss": temporal_loss,
                     "upstream": Upstream("cadstn", "baseline", embed=embed_baseline)},
        "cadstn": {**_CLIP_NETWORK, "augmentation": None, "recipe": FUSION_RECIPE,
                   "upstream": (Upstream("cadstn", "spatial", embed=embed_spatial),
                                Upstream("cadstn", "temporal", embed=embed_temporal))},
    },
))
