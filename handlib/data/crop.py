"""Hand crops as batched tensor ops: centre of mass, cube crop, normalisation.

DeepPrior++'s ``HandDetector`` (used by CrossInfoNet) with its per-frame loops replaced by
gathers over a batch. Shapes: depth maps (B, H, W) in mm, 0 = no value; CoM and cube (B, 3).
"""
from __future__ import annotations

import torch

from handlib.geometry import (Camera, com_to_box, crop_layout, crop_transform, normalize_depth,
                              normalize_joints, transform_points_2d, uvd_to_xyz)

# HandDetector's valid depth range for the CoM (mm).
MIN_DEPTH_MM = 10.0
MAX_DEPTH_MM = 1500.0
# Last-resort CoM depth when a crop holds no valid pixel (DeepPrior).
FALLBACK_DEPTH_MM = 300.0

# Background is +1 in a normalised crop only up to float rounding: in float32, (z + C/2 - z) / (C/2)
# can come out as 0.99999976 or 0.9999937 (the synthetic frames are normalised in float32). A value at
# or above BACKGROUND_THRESHOLD is background; a hand pixel there would lie within 1e-4 of half a cube
# (about 0.01 mm for a 250 mm cube) of the cube's far face, which does not occur.
BACKGROUND_THRESHOLD = 1.0 - 1e-4
# The test the committed training runs were made with (``depth_to_mm``'s default, used by
# ``augment.warp_batch``: CrossInfoNet's augmentation, CADSTN's rotated copies, Liu et al.'s re-crops):
# only an exact +1 is background. Kept so those runs' inputs, and their records, stay as they are.
EXACT_BACKGROUND = 1.0


def is_background(depth_norm: torch.Tensor, threshold: float = BACKGROUND_THRESHOLD) -> torch.Tensor:
    """Boolean mask of the background pixels of a normalised crop (any shape): values >= ``threshold``.

    The default ``BACKGROUND_THRESHOLD`` counts a float32 background that rounded just below +1."""
    return depth_norm >= threshold


def foreground_mask(depth_norm: torch.Tensor, threshold: float = BACKGROUND_THRESHOLD) -> torch.Tensor:
    """Boolean mask of the hand (and arm) pixels of a normalised crop: values < ``threshold``, the
    complement of :func:`is_background` (a NaN, which no crop holds, would be in neither)."""
    return depth_norm < threshold


def center_of_mass(depth: torch.Tensor, min_depth: float = MIN_DEPTH_MM,
                   max_depth: float = MAX_DEPTH_MM) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, W) mm -> ((B, 3) CoM as (mean column, mean row, mean depth), (B,) valid-pixel count).

    ``calculateCoM``: pixels that are non-zero and within [min_depth, max_depth]; empty -> zeros."""
    b, h, w = depth.shape
    mask = (depth > 0) & (depth >= min_depth) & (depth <= max_depth)
    weight = mask.to(torch.float64)
    count = weight.sum(dim=(1, 2))
    rows = torch.arange(h, dtype=torch.float64, device=depth.device).view(1, h, 1)
    cols = torch.arange(w, dtype=torch.float64, device=depth.device).view(1, 1, w)
    denom = count.clamp(min=1)
    com = torch.stack(((weight * cols).sum(dim=(1, 2)) / denom,
                       (weight * rows).sum(dim=(1, 2)) / denom,
                       (weight * depth.to(torch.float64)).sum(dim=(1, 2)) / denom), dim=-1)
    return com, count


def _box_pixels(depth: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Full-image depth with everything outside each (B, 6) box and its depth window handled as in
    ``getCrop``: outside the box -> 0, nearer than z0 -> z0, farther than z1 -> 0."""
    b, h, w = depth.shape
    cols = torch.arange(w, device=depth.device).view(1, 1, w)
    rows = torch.arange(h, device=depth.device).view(1, h, 1)
    x0, x1, y0, y1, z0, z1 = (box[:, i].view(b, 1, 1) for i in range(6))
    inside = (cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1)
    d = torch.where(inside, depth, torch.zeros_like(depth))
    return clamp_depth_window(d, z0, z1)


def clamp_depth_window(depth: torch.Tensor, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Non-zero pixels nearer than z0 become z0; pixels farther than z1 become background (0)."""
    z0 = z0.to(depth.dtype)
    z1 = z1.to(depth.dtype)
    depth = torch.where((depth > 0) & (depth < z0), z0.expand_as(depth), depth)
    return torch.where(depth > z1, torch.zeros_like(depth), depth)


def refine_com(depth: torch.Tensor, start_uvd: torch.Tensor, cube: torch.Tensor, cam: Camera,
               iterations: int = 1, window_scale: float = 1.0) -> torch.Tensor:
    """``docom=True``: CoM of the valid pixels in the cube crop around ``start_uvd`` (e.g. a GT joint),
    repeated ``iterations`` times. Empty crops keep (u, v) and take the start depth, or 300 mm.

    The CoM is taken in the cube scaled by ``window_scale``. The default 1 is DeepPrior(++)'s and
    CrossInfoNet's step (``cropArea3D(docom=True)``, ``refineCoMIterative``: the window is the crop
    cube itself). Its fixed point is the CoM of everything the window holds: when a cube of 2-3 hand
    widths holds the hand *and* the forearm (its depth window, CoM depth ± cube/2, keeps a forearm a
    few cm behind the hand), every step moves towards the arm and the iteration ends at the CoM of
    hand and arm together, however many steps are run. A hand-sized window (``window_scale`` about
    0.5 for a 250 mm cube) stays on the hand the start point lies on; the crop itself still uses
    ``cube``. The papers instead refine the centre with a network (DeepPrior++'s ``refineNet``,
    V2V's refined centres)."""
    com = start_uvd.to(torch.float64)
    size = cube.to(torch.float64) * window_scale          # (B, 3) mm: the cube the CoM is taken in
    for _ in range(iterations):
        box = com_to_box(com, size, cam)
        new_com, count = center_of_mass(_box_pixels(depth, box))
        fallback_z = torch.where(com[:, 2] > 0, com[:, 2], torch.full_like(com[:, 2], FALLBACK_DEPTH_MM))
        fallback = torch.stack((com[:, 0], com[:, 1], fallback_z), dim=-1)
        com = torch.where((count > 0).unsqueeze(-1), new_com, fallback)
    return com


def crop_depth(depth: torch.Tensor, com_uvd: torch.Tensor, cube: torch.Tensor, cam: Camera,
               size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut, clamp and resize each frame's cube around its CoM (``cropArea3D``).

    (B, H, W) mm, (B, 3) uvd, (B, 3) mm -> ((B, size, size) crop in mm, 0 = background;
    (B, 3, 3) transform M from full-image to crop pixels). Resizing is OpenCV's INTER_NEAREST
    (source index = floor(dst * src_size / dst_size)); the resized box is centred on the canvas."""
    b, h, w = depth.shape
    box = com_to_box(com_uvd.to(torch.float64), cube.to(torch.float64), cam)
    m = crop_transform(box, size)
    _, new_w, new_h, off_x, off_y = crop_layout(box, size)
    x0, x1, y0, y1 = box[:, 0:1], box[:, 1:2], box[:, 2:3], box[:, 3:4]
    canvas = torch.arange(size, dtype=torch.float64, device=depth.device).view(1, size)
    dx = canvas - off_x.unsqueeze(1)                       # (B, S) position inside the resized box
    dy = canvas - off_y.unsqueeze(1)
    src_u = x0 + torch.floor(dx * (x1 - x0) / new_w.unsqueeze(1))
    src_v = y0 + torch.floor(dy * (y1 - y0) / new_h.unsqueeze(1))
    ok_u = (dx >= 0) & (dx < new_w.unsqueeze(1)) & (src_u >= 0) & (src_u < w)
    ok_v = (dy >= 0) & (dy < new_h.unsqueeze(1)) & (src_v >= 0) & (src_v < h)
    iu = src_u.clamp(0, w - 1).long()
    iv = src_v.clamp(0, h - 1).long()
    batch = torch.arange(b, device=depth.device).view(b, 1, 1)
    crop = depth[batch, iv.unsqueeze(2), iu.unsqueeze(1)]  # (B, S, S) nearest-neighbour gather
    crop = torch.where(ok_v.unsqueeze(2) & ok_u.unsqueeze(1), crop, torch.zeros_like(crop))
    crop = clamp_depth_window(crop, box[:, 4].view(b, 1, 1), box[:, 5].view(b, 1, 1))
    return crop, m


def crop_joints(joints_uvd: torch.Tensor, m: torch.Tensor, com_z: torch.Tensor,
                cube_z: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) full-image uvd -> (B, J, 3) crop pixels + normalised depth."""
    crop = transform_points_2d(joints_uvd.to(m.dtype), m)
    z = com_z.to(m.dtype).unsqueeze(-1)
    half = (cube_z.to(m.dtype) / 2).unsqueeze(-1)
    return torch.cat((crop[..., :2], ((crop[..., 2] - z) / half).unsqueeze(-1)), dim=-1)


def uncrop_joints(joints_crop: torch.Tensor, m: torch.Tensor, com_z: torch.Tensor,
                  cube_z: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`crop_joints`: crop pixels + normalised depth -> full-image uvd."""
    full = transform_points_2d(joints_crop.to(m.dtype), torch.linalg.inv(m))
    d = joints_crop[..., 2].to(m.dtype) * (cube_z.to(m.dtype) / 2).unsqueeze(-1) + com_z.to(m.dtype).unsqueeze(-1)
    return torch.cat((full[..., :2], d.unsqueeze(-1)), dim=-1)


def crop_batch(depth: torch.Tensor, joints_uvd: torch.Tensor, com_uvd: torch.Tensor, cube: torch.Tensor,
               cam: Camera, size: int = 96) -> dict[str, torch.Tensor]:
    """Full frames -> the batched sample tensors (see :mod:`handlib.sample`), float32.

    (B, H, W) mm, (B, J, 3) uvd, (B, 3) CoM uvd, (B, 3) cube mm."""
    crop_mm, m = crop_depth(depth, com_uvd, cube, cam, size)
    com_uvd = com_uvd.to(torch.float64)
    cube = cube.to(torch.float64)
    com_xyz = uvd_to_xyz(com_uvd, cam)
    joints_uvd = joints_uvd.to(torch.float64)
    joints_xyz = uvd_to_xyz(joints_uvd, cam)
    return sample_fields(crop_mm.to(torch.float64), joints_uvd, joints_xyz, com_xyz, cube, m)


def sample_fields(crop_mm: torch.Tensor, joints_uvd: torch.Tensor, joints_xyz: torch.Tensor,
                  com_xyz: torch.Tensor, cube: torch.Tensor, m: torch.Tensor,
                  depth_dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The geometric keys of a batched sample (see :mod:`handlib.sample`) from a crop in mm, its
    joints, centre, cube and crop transform; everything float32 except ``depth`` (``depth_dtype``)."""
    f32 = torch.float32
    return {
        "depth": normalize_depth(crop_mm, com_xyz[:, 2], cube[:, 2]).unsqueeze(1).to(depth_dtype),
        "joints": normalize_joints(joints_xyz, com_xyz, cube).to(f32),
        "joints_xyz": joints_xyz.to(f32),
        "joints_uvd": joints_uvd.to(f32),
        "joints_crop": crop_joints(joints_uvd, m, com_xyz[:, 2], cube[:, 2]).to(f32),
        "com": com_xyz.to(f32),
        "cube": cube.to(f32),
        "transform": m.to(f32),
    }


def depth_to_mm(depth_norm: torch.Tensor, com_z: torch.Tensor, cube_z: torch.Tensor,
                threshold: float = EXACT_BACKGROUND) -> torch.Tensor:
    """Inverse of the depth normalisation: (B, ..., S, S) in [-1, 1] -> mm, background -> 0.

    Background is ``is_background(depth_norm, threshold)``. Pass ``threshold=BACKGROUND_THRESHOLD``
    for the rounding-safe test. The default (``EXACT_BACKGROUND``: only +1 itself) is the one the
    committed training runs were made with: there a float32 background of 0.99999976 comes back as a
    pixel at the cube's far face, which a re-crop that moves the far face back keeps as a wall."""
    shape = (-1,) + (1,) * (depth_norm.dim() - 1)
    z = com_z.reshape(shape).to(torch.float64)
    half = (cube_z.reshape(shape) / 2).to(torch.float64)
    mm = depth_norm.to(torch.float64) * half + z
    return torch.where(is_background(depth_norm, threshold), torch.zeros_like(mm), mm)
