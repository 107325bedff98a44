"""Camera geometry shared by the synthetic renderer and the real-data loaders.

Conventions (awesome-hand-pose-estimation ``evaluation/src/util.py``; DeepPrior++ and CrossInfoNet
crops): *uvd* is (column, row) in full-image pixels plus depth in mm; *xyz* is camera-frame mm
with x = (u - cx) d / fx, y = (v - cy) d / fy, z = d. The sign of ``fy`` carries the y direction (NYU's evaluation uses fy < 0, i.e. y up).
All functions take tensors with any leading batch shape and a trailing axis of size 3.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from handlib.dataset_registry import dataset_names, get_dataset


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics and image size (pixels)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def as_tensor(self, like: torch.Tensor | None = None) -> torch.Tensor:
        t = torch.tensor([self.fx, self.fy, self.cx, self.cy], dtype=torch.float64)
        if like is not None:
            t = t.to(dtype=like.dtype, device=like.device)
        return t


# Presets keyed by dataset name, built from handlib.dataset_registry, the one source.
# The AWESOME evaluation's intrinsics: these define the published numbers.
EVAL_CAMERAS: dict[str, Camera] = {name: Camera(*get_dataset(name).eval_intrinsics)
                                   for name in dataset_names("evaluable")}

# Intrinsics the training code uses to read each dataset.
TRAIN_CAMERAS: dict[str, Camera] = {name: Camera(*get_dataset(name).train_intrinsics)
                                    for name in dataset_names("real")}


def get_camera(name: str, *, evaluation: bool = False) -> Camera:
    """Intrinsics preset by dataset name (``evaluation=True`` gives the AWESOME protocol's)."""
    table = EVAL_CAMERAS if evaluation else TRAIN_CAMERAS
    if name not in table:
        kind = "evaluation" if evaluation else "training"
        raise ValueError(f"no {kind} intrinsics for dataset {name!r}; expected one of {sorted(table)}")
    return table[name]


def uvd_to_xyz(uvd: torch.Tensor, cam: Camera) -> torch.Tensor:
    """(..., 3) pixels + mm -> (..., 3) camera mm."""
    u, v, d = uvd.unbind(-1)
    return torch.stack(((u - cam.cx) * d / cam.fx, (v - cam.cy) * d / cam.fy, d), dim=-1)


def xyz_to_uvd(xyz: torch.Tensor, cam: Camera) -> torch.Tensor:
    """(..., 3) camera mm -> (..., 3) pixels + mm."""
    x, y, z = xyz.unbind(-1)
    return torch.stack((x * cam.fx / z + cam.cx, y * cam.fy / z + cam.cy, z), dim=-1)


def com_to_box(com_uvd: torch.Tensor, cube: torch.Tensor, cam: Camera) -> torch.Tensor:
    """DeepPrior ``comToBounds``: (..., 3) CoM in uvd and (..., 3) cube mm -> (..., 6) integer
    bounds (x0, x1, y0, y1, z0, z1); pixel bounds rounded as floor(value + 0.5), |fy| used."""
    u, v, z = com_uvd.unbind(-1)
    sx, sy, sz = cube.unbind(-1)
    half_w = sx / 2 * cam.fx / z
    half_h = sy / 2 * abs(cam.fy) / z
    x0 = torch.floor(u - half_w + 0.5)
    x1 = torch.floor(u + half_w + 0.5)
    y0 = torch.floor(v - half_h + 0.5)
    y1 = torch.floor(v + half_h + 0.5)
    return torch.stack((x0, x1, y0, y1, z - sz / 2, z + sz / 2), dim=-1)


def crop_transform(box: torch.Tensor, size: int) -> torch.Tensor:
    """(..., 6) box -> (..., 3, 3) transform M mapping full-image pixels to crop pixels.

    DeepPrior's ``getCrop`` + ``resizeCrop``: shift to the box, scale so the longer side becomes
    ``size`` (aspect kept, nearest neighbour), then centre on the square canvas.
    M = offset @ scale @ translate.
    """
    x0, y0 = box[..., 0], box[..., 2]
    scale, _, _, off_x, off_y = crop_layout(box, size)
    m = torch.zeros(box.shape[:-1] + (3, 3), dtype=box.dtype, device=box.device)
    m[..., 0, 0] = scale
    m[..., 1, 1] = scale
    m[..., 0, 2] = off_x - scale * x0
    m[..., 1, 2] = off_y - scale * y0
    m[..., 2, 2] = 1
    return m


def crop_layout(box: torch.Tensor, size: int):
    """(..., 6) box -> (scale, new_w, new_h, off_x, off_y): the resized box's size and its offset
    on the ``size`` x ``size`` canvas (longer side -> ``size``, aspect kept, sizes floored)."""
    w, h = box[..., 1] - box[..., 0], box[..., 3] - box[..., 2]
    scale = torch.where(w >= h, size / w, size / h)
    new_w = torch.where(w >= h, torch.full_like(w, size), torch.floor(w * size / h))
    new_h = torch.where(w >= h, torch.floor(h * size / w), torch.full_like(h, size))
    off_x = torch.floor(size / 2 - new_w / 2)
    off_y = torch.floor(size / 2 - new_h / 2)
    return scale, new_w, new_h, off_x, off_y


def transform_points_2d(points: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Apply (..., 3, 3) M to the (u, v) of (..., J, >=2) points; other columns pass through."""
    uv1 = torch.cat((points[..., :2], torch.ones_like(points[..., :1])), dim=-1)
    out = uv1 @ m.transpose(-1, -2)
    uv = out[..., :2] / out[..., 2:3]
    return torch.cat((uv, points[..., 2:]), dim=-1)


def normalize_depth(depth_mm: torch.Tensor, com_z: torch.Tensor, cube_z: torch.Tensor) -> torch.Tensor:
    """(B, ..., H, W) crop depth in mm (0 = background) -> [-1, 1], background +1 (CIN ``norm_dm``).

    ``com_z`` and ``cube_z`` have shape (B,)."""
    shape = (-1,) + (1,) * (depth_mm.dim() - 1)
    z = com_z.reshape(shape).to(depth_mm.dtype)
    half = (cube_z.reshape(shape) / 2).to(depth_mm.dtype)
    filled = torch.where(depth_mm > 0, depth_mm, z + half)
    return ((filled - z) / half).clamp(-1.0, 1.0)


def normalize_joints(joints_xyz: torch.Tensor, com_xyz: torch.Tensor, cube: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) mm -> (B, J, 3) (xyz - com) / (cube / 2) (DeepPrior++'s normalisation)."""
    return (joints_xyz - com_xyz.unsqueeze(-2)) / (cube.unsqueeze(-2) / 2)


def denormalize_joints(joints_norm: torch.Tensor, com_xyz: torch.Tensor, cube: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`normalize_joints`."""
    return joints_norm * (cube.unsqueeze(-2) / 2) + com_xyz.unsqueeze(-2)
