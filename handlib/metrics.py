"""3D hand pose metrics: the evaluation protocol of xinghaochen/awesome-hand-pose-estimation
(``evaluation/src/compute_error.py`` and ``util.py``) as tensor ops.

Every function takes tensors with a leading frame axis F and a joint axis J, trailing xyz in mm,
and works on whatever device the tensors live on. Errors are computed in float64 so results match
the reference script to well below 0.001 mm.
"""
from __future__ import annotations

import torch

from handlib.geometry import Camera, get_camera, uvd_to_xyz

SUCCESS_VARIANTS = ("max-frame", "mean-frame", "joint")
# The protocol's thresholds: 0..80 mm in 1 mm steps (the plots' range).
DEFAULT_THRESHOLDS_MM = tuple(range(0, 81))
# Thresholds the evaluate CLI reports.
REPORT_THRESHOLDS_MM = (10, 20, 30, 40, 50, 80)


def _as_f64(x) -> torch.Tensor:
    return torch.as_tensor(x).to(torch.float64)


def uvd_to_xyz_eval(uvd, dataset: str | Camera) -> torch.Tensor:
    """(F, J, 3) uvd -> xyz with the evaluation intrinsics (AWESOME's, NYU fy < 0)."""
    cam = dataset if isinstance(dataset, Camera) else get_camera(dataset, evaluation=True)
    return uvd_to_xyz(_as_f64(uvd), cam)


def joint_errors(pred_xyz, gt_xyz) -> torch.Tensor:
    """(F, J, 3), (F, J, 3) mm -> (F, J) Euclidean distance per frame and joint (step 3)."""
    pred, gt = _as_f64(pred_xyz), _as_f64(gt_xyz)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != ground truth shape {tuple(gt.shape)}")
    return torch.linalg.vector_norm(pred - gt, dim=-1)


def error_components(pred_xyz, gt_xyz) -> dict[str, torch.Tensor]:
    """Each joint's error split by direction, all (F, J) mm: ``"xyz"`` (the 3D distance, as
    :func:`joint_errors`), ``"xy"`` (in the image plane: a 2D detection error) and ``"z"``
    (|Δ depth|: a depth-reading error). xyz² = xy² + z² for every joint."""
    pred, gt = _as_f64(pred_xyz), _as_f64(gt_xyz)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != ground truth shape {tuple(gt.shape)}")
    delta = pred - gt
    return {"xyz": torch.linalg.vector_norm(delta, dim=-1),
            "xy": torch.linalg.vector_norm(delta[..., :2], dim=-1),
            "z": delta[..., 2].abs()}


def as_frames(errors: torch.Tensor) -> torch.Tensor:
    """(..., J) errors -> (F, J): every leading axis is frames (clips (N, T, J) become N*T frames), so
    no metric ever reduces over time instead of over frames."""
    if errors.dim() < 2:
        raise ValueError(f"errors must be (frames, joints) or (clips, time, joints), got shape {tuple(errors.shape)}")
    return errors.reshape(-1, errors.shape[-1])


def per_joint_error(errors: torch.Tensor) -> torch.Tensor:
    """(F, J) (or (N, T, J) clips) -> (J,) mean over frames of each joint's error."""
    return as_frames(errors).mean(dim=0)


def mean_error(errors: torch.Tensor) -> float:
    """The reported mean 3D error: mean of the per-joint means (step 4)."""
    return float(per_joint_error(errors).mean())


def success_curve(errors: torch.Tensor, thresholds=DEFAULT_THRESHOLDS_MM,
                  variant: str = "max-frame") -> torch.Tensor:
    """(F, J) errors (or (N, T, J) clips, taken as N*T frames) -> (thresholds,) fraction of successes
    at each threshold, "<= threshold" inclusive.

    * ``max-frame``: frames whose worst joint is within the threshold (Taylor et al.; CIN Fig. 7).
    * ``mean-frame``: frames whose average joint error is within the threshold.
    * ``joint``: (frame, joint) pairs within the threshold.
    """
    errors = as_frames(errors)
    if variant == "max-frame":
        values = errors.max(dim=1).values
    elif variant == "mean-frame":
        values = errors.mean(dim=1)
    elif variant == "joint":
        values = errors.reshape(-1)
    else:
        raise ValueError(f"unknown success-curve variant {variant!r}; expected one of {SUCCESS_VARIANTS}")
    t = torch.as_tensor(thresholds, dtype=values.dtype, device=values.device)
    # (T, N) comparison, averaged over N: one vectorised pass for all thresholds.
    return (values.unsqueeze(0) <= t.unsqueeze(1)).to(torch.float64).mean(dim=1)


def success_auc(errors: torch.Tensor, max_mm: float = 80.0, variant: str = "max-frame") -> float:
    """Area under the success curve over 0..``max_mm`` (1 mm steps), normalised to [0, 1]: the mean of
    the curve by the trapezoid rule (1.0: every frame within 0 mm)."""
    thresholds = torch.arange(0, int(max_mm) + 1, dtype=torch.float64)
    curve = success_curve(errors, thresholds, variant)
    return float(torch.trapezoid(curve, thresholds) / max_mm)


def subset_errors(errors: torch.Tensor, subsets: dict[str, slice]) -> dict[str, float]:
    """Mean error of each named frame slice, e.g. NYU's subject A/B ``{"A": slice(0, 2440), ...}``."""
    return {name: mean_error(errors[sl]) for name, sl in subsets.items()}


def evaluate_uvd(pred_uvd, gt_uvd, dataset: str | Camera,
                 thresholds=REPORT_THRESHOLDS_MM) -> dict:
    """Score uvd predictions against uvd ground truth the way the AWESOME script does.

    Returns ``frames``, ``joints``, ``mean_mm``, ``per_joint_mm`` (list) and
    ``success_max_frame`` ({"10": fraction, ...})."""
    errors = joint_errors(uvd_to_xyz_eval(pred_uvd, dataset), uvd_to_xyz_eval(gt_uvd, dataset))
    curve = success_curve(errors, thresholds, "max-frame")
    return {
        "frames": int(errors.shape[0]),
        "joints": int(errors.shape[1]),
        "mean_mm": mean_error(errors),
        "per_joint_mm": per_joint_error(errors).tolist(),
        "success_max_frame": {str(int(t)): float(c) for t, c in zip(thresholds, curve)},
    }
