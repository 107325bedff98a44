"""Heat-map targets and the papers' losses, in each released code's scaling.

CrossInfoNet (Du et al., CVPR 2019, Eq. 7; released code, ``network/NYU/train_and_test.py``):
every term is TF's ``l2_loss(pred − gt) / batch`` = ½·Σ(pred − gt)² / B, and

    total = ½ · [ α·(L_ht + L_bp + L_bf) + β·(L_a + L_ep + L_ef) ],   α = 0.01, β = 1,

plus an L2 penalty 1e-5·½‖w‖² on conv / FC weights only. That term is not computed here: its
gradient is Adam's coupled ``weight_decay=1e-5`` on those weights, which the training loop's
parameter groups apply (``handlib.train.parameter_groups`` with the model's recipe).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

CROSSINFONET_ALPHA = 0.01   # heat-map terms
CROSSINFONET_BETA = 1.0     # coordinate terms
# OpenCV GaussianBlur(ksize=3, sigma=0) uses the binomial kernel [1/4, 1/2, 1/4] per axis.
_BINOMIAL_3 = torch.tensor([0.25, 0.5, 0.25])


def crossinfonet_heatmap_targets(joints_crop: torch.Tensor, image_size: int = 96,
                                 heatmap_size: int = 24) -> torch.Tensor:
    """(B, J, ≥2) joint crop pixels (u, v, ...) → (B, J, H, H) targets as the code makes them.

    CIN ``joints_heatmap_gen``: u, v above ``image_size − 1`` are clamped to it; a one-hot goes
    at row ⌊v·H/S⌋, column ⌊u·H/S⌋ (truncation); a joint with negative u or v gets an all-zero
    map; each map is blurred by the 3×3 binomial kernel (reflect-101 border) and divided by its
    peak. Inside the grid: 1 at the joint, ½ at the 4-neighbours, ¼ at the diagonals.
    """
    if joints_crop.dim() != 3 or joints_crop.shape[-1] < 2:
        raise ValueError("joints_crop must have shape (B, J, 2 or 3) in crop pixels, got "
                         f"{tuple(joints_crop.shape)}")
    batch, joints = joints_crop.shape[:2]
    uv = joints_crop[..., :2].detach().float().clamp(max=image_size - 1)
    inside = (uv >= 0).all(dim=-1)                                   # (B, J)
    cell = torch.floor(uv.clamp(min=0) * (heatmap_size / image_size)).long()
    cell = cell.clamp(max=heatmap_size - 1)                          # guards float edge cases
    flat_index = cell[..., 1] * heatmap_size + cell[..., 0]          # row-major (v, u)
    one_hot = torch.zeros(batch * joints, heatmap_size * heatmap_size, device=uv.device)
    one_hot.scatter_(1, flat_index.reshape(-1, 1), inside.reshape(-1, 1).float())
    one_hot = one_hot.reshape(batch * joints, 1, heatmap_size, heatmap_size)
    kernel = torch.outer(_BINOMIAL_3, _BINOMIAL_3).to(uv.device).reshape(1, 1, 3, 3)
    blurred = F.conv2d(F.pad(one_hot, (1, 1, 1, 1), mode="reflect"), kernel)
    peak = blurred.amax(dim=(-2, -1), keepdim=True)
    maps = torch.where(peak > 0, blurred / peak.clamp(min=1e-12), blurred)
    return maps.reshape(batch, joints, heatmap_size, heatmap_size).to(joints_crop.dtype)


def half_sse_per_sample(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """TF ``l2_loss(prediction − target) / B``: ½·Σ(prediction − target)² over all but the
    batch axis, averaged over the batch. Summed in float32 even under bf16/fp16 autocast."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(prediction.shape)} does not match target "
                         f"shape {tuple(target.shape)}")
    return 0.5 * (prediction.float() - target.float()).pow(2).sum() / prediction.shape[0]


def crossinfonet_loss(outputs: dict, batch: dict, alpha: float = CROSSINFONET_ALPHA,
                      beta: float = CROSSINFONET_BETA) -> dict:
    """Eq. 7 in the code's scaling; returns every named term plus ``total``.

    Targets: ``batch["joints"]`` (B, J, 3) normalised joints, sliced by the model's partitions
    (``outputs["palm_joints"]`` / ``["finger_joints"]``) for L_ep / L_ef; heat-map terms use
    :func:`crossinfonet_heatmap_targets` of ``batch["joints_crop"]`` and are present only when
    the outputs carry heat maps (the ``*_hm`` variants).
    """
    for key in ("joints", "joints_crop", "depth"):
        if key not in batch:
            raise ValueError(f"CrossInfoNet loss needs batch[{key!r}] (see handlib/sample.py)")
    joints = batch["joints"]
    palm_index, finger_index = outputs["palm_joints"], outputs["finger_joints"]
    terms = {
        "L_a": half_sse_per_sample(outputs["hand"], joints),                 # all joints
        "L_ep": half_sse_per_sample(outputs["palm"], joints[:, palm_index]),
        "L_ef": half_sse_per_sample(outputs["finger"], joints[:, finger_index]),
    }
    coordinates = terms["L_a"] + terms["L_ep"] + terms["L_ef"]
    total = 0.5 * beta * coordinates
    if "heatmap" in outputs:
        targets = crossinfonet_heatmap_targets(batch["joints_crop"],
                                               image_size=batch["depth"].shape[-1],
                                               heatmap_size=outputs["heatmap"].shape[-1])
        terms["L_ht"] = half_sse_per_sample(outputs["heatmap"], targets)
        terms["L_bp"] = half_sse_per_sample(outputs["palm_heatmap"], targets[:, palm_index])
        terms["L_bf"] = half_sse_per_sample(outputs["finger_heatmap"], targets[:, finger_index])
        total = total + 0.5 * alpha * (terms["L_ht"] + terms["L_bp"] + terms["L_bf"])
    terms["total"] = total
    return terms


def gaussian_heatmap_targets(joints_crop: torch.Tensor, image_size: int, heatmap_size: int,
                             sigma: float = 1.0) -> torch.Tensor:
    """(B, J, ≥2) joint crop pixels (u, v, ...) → (B, J, H, H) Newell-style Gaussian targets, peak 1.

    Map cell k covers crop pixels [k·S/H, (k+1)·S/H), so crop pixel u sits at map coordinate
    (u + ½)·H/S − ½; the Gaussian (σ in map cells) is centred there, sub-cell exactly (Newell rounds
    the centre to a cell; the exact centre lets the decoder's quarter-cell shift recover it). A joint far
    outside the crop gives a map of (near) zeros."""
    if joints_crop.dim() != 3 or joints_crop.shape[-1] < 2:
        raise ValueError("joints_crop must have shape (B, J, 2 or 3) in crop pixels, got "
                         f"{tuple(joints_crop.shape)}")
    if not sigma > 0:
        raise ValueError(f"heat-map sigma must be positive, got {sigma}")
    centre = (joints_crop[..., :2].detach().float() + 0.5) * (heatmap_size / image_size) - 0.5
    grid = torch.arange(heatmap_size, dtype=torch.float32, device=joints_crop.device)
    gx = torch.exp(-(grid - centre[..., 0:1]) ** 2 / (2 * sigma ** 2))       # (B, J, H) along u
    gy = torch.exp(-(grid - centre[..., 1:2]) ** 2 / (2 * sigma ** 2))       # (B, J, H) along v
    return gy.unsqueeze(-1) * gx.unsqueeze(-2)                               # (B, J, v, u)
