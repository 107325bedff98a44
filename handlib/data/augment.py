"""CrossInfoNet's online augmentation on batched crops (released code, ``augmentCrop`` in
``util/preprocess.py``), as tensor ops.

Each sample gets one mode drawn uniformly from ``modes``:

* ``com``  — move the CoM by N(0, sigma_com) mm per axis and re-crop (perspective re-warp of the crop);
* ``rot``  — rotate the crop in-plane about its centre by U(-rot_deg, rot_deg), labels with it;
* ``sc``   — multiply the cube by |1 + N(0, sigma_sc)| and re-crop;
* ``none`` — unchanged.

``ranges="paper"`` uses the paper's §3.5 ranges instead of the released code's: translation U(-10, 10)
crop pixels in u and v, scale U(0.9, 1.1). All warps are nearest neighbour with background 0 (as
``cv2.warpAffine``/``warpPerspective`` with INTER_NEAREST), then the crop is re-clamped to the new
depth window and re-normalised, so image and labels stay consistent.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from handlib.data.crop import clamp_depth_window, depth_to_mm, sample_fields
from handlib.geometry import (Camera, com_to_box, crop_transform, transform_points_2d, uvd_to_xyz,
                              xyz_to_uvd)

MODES = ("com", "rot", "sc", "none")
NYU_MODES = ("com", "rot", "none", "sc")    # order in CIN network/NYU/train_and_test.py
MSRA_MODES = ("rot", "sc", "com", "none")   # order in CIN network/MSRA/train_and_test.py


@dataclass(frozen=True)
class AugmentConfig:
    modes: tuple[str, ...] = NYU_MODES
    sigma_com_mm: float = 10.0     # code: N(0, 10 mm)
    sigma_scale: float = 0.05      # code: |1 + N(0, 0.05)|
    rot_deg: float = 180.0         # code and paper: U(-180, 180)
    ranges: str = "code"           # "code" (released scripts) or "paper" (§3.5 text)
    paper_shift_px: float = 10.0   # paper: U(-10, 10) pixels
    paper_scale: tuple[float, float] = (0.9, 1.1)

    def __post_init__(self):
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise ValueError(f"augmentation modes {bad or self.modes} invalid; expected a subset of {MODES}")
        if self.ranges not in ("code", "paper"):
            raise ValueError(f"augmentation ranges {self.ranges!r}; expected 'code' or 'paper'")


def _warp_nearest(image: torch.Tensor, h_dst_to_src: torch.Tensor) -> torch.Tensor:
    """(B, S, S) image, (B, 3, 3) map from destination to source pixels -> nearest-neighbour warp,
    0 outside the source."""
    b, s, _ = image.shape
    grid = torch.arange(s, dtype=h_dst_to_src.dtype, device=image.device)
    v, u = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack((u, v, torch.ones_like(u)), dim=-1).reshape(1, -1, 3)   # (1, S*S, 3)
    src = pts @ h_dst_to_src.transpose(1, 2)                                   # (B, S*S, 3)
    su = torch.floor(src[..., 0] / src[..., 2] + 0.5)
    sv = torch.floor(src[..., 1] / src[..., 2] + 0.5)
    ok = (su >= 0) & (su < s) & (sv >= 0) & (sv < s)
    flat = (sv.clamp(0, s - 1) * s + su.clamp(0, s - 1)).long()
    out = torch.gather(image.reshape(b, -1), 1, flat)
    return torch.where(ok, out, torch.zeros_like(out)).reshape(b, s, s)


def _rotation_about(center: float, angle_rad: torch.Tensor) -> torch.Tensor:
    """(B,) angles -> (B, 3, 3) rotations of crop pixels about (center, center)."""
    c, s = torch.cos(angle_rad), torch.sin(angle_rad)
    r = torch.zeros(angle_rad.shape + (3, 3), dtype=angle_rad.dtype, device=angle_rad.device)
    r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1] = c, -s, s, c
    r[:, 0, 2] = center - c * center + s * center
    r[:, 1, 2] = center - s * center - c * center
    r[:, 2, 2] = 1
    return r


def augment_batch(batch: dict, cam: Camera, config: AugmentConfig = AugmentConfig(),
                  generator: torch.Generator | None = None) -> dict:
    """Augment a collated batch of samples (see :mod:`handlib.sample`); returns a new dict with
    ``depth``, ``joints``, ``joints_xyz``, ``joints_uvd``, ``joints_crop``, ``com``, ``cube``,
    ``transform`` updated and ``aug_mode`` (B,) indices into ``config.modes``. Random numbers are
    drawn on the CPU from ``generator`` so results do not depend on the device."""
    depth = batch["depth"]
    device, b = depth.device, depth.shape[0]
    f64 = torch.float64

    def draw(fn, *shape):
        return fn(*shape, generator=generator, dtype=f64).to(device)

    mode = torch.randint(len(config.modes), (b,), generator=generator).to(device)
    is_mode = {name: mode == i for i, name in enumerate(config.modes)}
    none = torch.zeros(b, dtype=torch.bool, device=device)
    is_com, is_rot, is_sc = (is_mode.get(k, none) for k in ("com", "rot", "sc"))

    com = batch["com"].to(f64)
    cube = batch["cube"].to(f64)
    m_old = batch["transform"].to(f64)

    # Translation of the CoM.
    if config.ranges == "code":
        shift_xyz = draw(torch.randn, b, 3) * config.sigma_com_mm
        new_com = com + shift_xyz * is_com.unsqueeze(-1)
    else:
        shift_px = (draw(torch.rand, b, 2) * 2 - 1) * config.paper_shift_px
        com_uvd = xyz_to_uvd(com, cam)
        shift_full = shift_px / m_old[:, 0, 0].unsqueeze(-1)          # crop px -> full-image px
        moved = torch.cat((com_uvd[:, :2] + shift_full, com_uvd[:, 2:]), dim=-1)
        new_com = torch.where(is_com.unsqueeze(-1), uvd_to_xyz(moved, cam), com)
    # Scale of the cube.
    if config.ranges == "code":
        factor = (1 + draw(torch.randn, b) * config.sigma_scale).abs()
    else:
        lo, hi = config.paper_scale
        factor = lo + draw(torch.rand, b) * (hi - lo)
    new_cube = cube * torch.where(is_sc, factor, torch.ones_like(factor)).unsqueeze(-1)

    angle = torch.deg2rad((draw(torch.rand, b) * 2 - 1) * config.rot_deg) * is_rot
    out = warp_batch(batch, cam, new_com, new_cube, angle, recrop=is_com | is_sc)
    out["aug_mode"] = mode
    return out


def rotate_batch(batch: dict, cam: Camera, angle_deg: torch.Tensor) -> dict:
    """Every crop of ``batch`` rotated in-plane about its centre by ``angle_deg`` (B,) degrees, labels
    with it (as :func:`augment_batch`'s ``rot`` mode, with given angles)."""
    angle = torch.deg2rad(angle_deg.to(device=batch["depth"].device, dtype=torch.float64))
    none = torch.zeros(angle.shape, dtype=torch.bool, device=angle.device)
    return warp_batch(batch, cam, batch["com"].to(torch.float64), batch["cube"].to(torch.float64), angle, none)


def warp_batch(batch: dict, cam: Camera, new_com: torch.Tensor, new_cube: torch.Tensor, angle: torch.Tensor,
               recrop: torch.Tensor) -> dict:
    """Re-crop (where ``recrop``) at ``new_com`` / ``new_cube`` and rotate by ``angle`` radians about the
    crop centre: the warped depth and every label field, consistent with each other."""
    depth = batch["depth"]
    b, size = depth.shape[0], depth.shape[-1]
    f64 = torch.float64
    com = batch["com"].to(f64)
    cube = batch["cube"].to(f64)
    m_old = batch["transform"].to(f64)
    joints_xyz = batch["joints_xyz"].to(f64)
    crop_mm = depth_to_mm(depth[:, 0], com[:, 2], cube[:, 2])
    # Re-crop for com/sc: the new M, and the warp from new crop pixels back to old ones.
    new_com_uvd = xyz_to_uvd(new_com, cam)
    m_new = crop_transform(com_to_box(new_com_uvd, new_cube, cam), size)
    m_new = torch.where(recrop.view(b, 1, 1), m_new, m_old)
    # Rotation about the crop centre (cv2.getRotationMatrix2D uses (w/2, h/2)).
    rot = _rotation_about(size / 2, angle)
    dst_to_src = m_old @ torch.linalg.inv(m_new) @ torch.linalg.inv(rot)
    warped = _warp_nearest(crop_mm, dst_to_src)
    half = new_cube[:, 2] / 2
    warped = clamp_depth_window(warped, (new_com[:, 2] - half).view(b, 1, 1),
                                (new_com[:, 2] + half).view(b, 1, 1))

    # Labels: rotate the joints' crop positions (depth kept), back to full-image uvd and xyz.
    joints_uvd = xyz_to_uvd(joints_xyz, cam)
    in_crop = transform_points_2d(joints_uvd, rot @ m_old)
    joints_uvd = transform_points_2d(in_crop, torch.linalg.inv(m_old))
    joints_xyz = uvd_to_xyz(joints_uvd, cam)

    out = dict(batch)
    if "parts" in batch:
        # Part labels move with the pixels; -1 (unknown) wherever the warped crop is background.
        parts = _warp_nearest(batch["parts"].to(f64) + 1, dst_to_src) - 1
        out["parts"] = torch.where(warped > 0, parts, torch.full_like(parts, -1)).to(batch["parts"].dtype)
    out.update(sample_fields(warped, joints_uvd, joints_xyz, new_com, new_cube, m_new, depth.dtype))
    return out
