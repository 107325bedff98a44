"""From frame keys to complete rendered frames (the compact, convention-free form that is cached).

A rendered frame holds everything in the OpenCV camera frame (x right, y down, z forward, mm) and
the canonical 25 points; :mod:`handlib.synth.dataset` turns it into the shared sample structure
for any joint convention and camera.
"""
from __future__ import annotations

import contextlib

import torch

from handlib.synth.kinematics import CAPSULE_PARTS, forward_kinematics, global_rotation, joint_mean
from handlib.synth.poses import DOMAINS, FAST_MOVES, PoseParams, com_error, sample_frames, sample_sequences
from handlib.synth.render import ray_cast, surface_normals
from handlib.synth.rng import FrameRandom, frame_keys, mix32, sub_keys
from handlib.synth.sensor import SensorModel

VISIBILITY_TOLERANCE_MM = 20.0  # a joint is visible if the surface at its pixel is not 20 mm nearer


def check_domain(domain: str) -> str:
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {list(DOMAINS)}")
    return domain


def check_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"crop size must be a positive integer (e.g. 96 or 128), got {size!r}")
    return size


@contextlib.contextmanager
def single_thread():
    """Run torch on one intra-op thread, then restore the caller's setting.

    The renderer is hundreds of small element-wise ops; with 2 OpenMP threads on a shared 2-core
    machine it measured 6-8x *slower* than with one (spin-waiting), and parallelism across frames
    comes from worker processes instead. Results do not depend on the thread count."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def render_params(params: PoseParams, keys: torch.Tensor, domain: str, size: int,
                  cube=250.0, sensor: SensorModel | None = None) -> dict:
    """Render frames fixed by ``params``; ``keys`` seed the per-pixel sensor noise.

    ``cube`` is a size in mm, a ``(low, high)`` range (per-frame cubes in 10 mm steps, as
    CrossInfoNet trains) or a (B,) tensor.

    Returns a dict of tensors with leading batch B: ``depth_mm`` (B, S, S) float32 (0 = background
    or missing), ``parts`` (B, S, S) uint8 (clean render), ``points`` (B, 25, 3), ``com`` (B, 3),
    ``cube`` (B,), ``visible`` (B, 25) bool, ``theta`` (B, 20), ``pose`` (B, 6), ``shape`` (B, 8).
    """
    with single_thread():
        return _render_params(params, keys, domain, size, cube, sensor)


def _render_params(params, keys, domain, size, cube, sensor) -> dict:
    rotation = global_rotation(params.pose[:, 0], params.pose[:, 1], params.pose[:, 2])
    points, (a, b, radius) = forward_kinematics(params.theta, params.shape, rotation, params.pose[:, 3:])
    com = joint_mean(points) + params.com_offset
    cube_t = cube_sizes(cube, keys)
    depth, winner = ray_cast(a, b, radius, com, cube_t, size)
    parts = torch.where(winner >= 0, CAPSULE_PARTS[winner.clamp(min=0)], 0)
    visible = joint_visibility(points, depth, com, cube_t, size)
    near, far = (com[:, 2] - cube_t / 2)[:, None, None], (com[:, 2] + cube_t / 2)[:, None, None]
    parts = torch.where(depth > far, 0, parts)  # labels follow the clean crop's background
    if domain == "real-like":
        _, cos_view = surface_normals(depth, winner, a, b, com, cube_t)
        depth = (sensor or SensorModel()).apply(depth, cos_view, com, cube_t, keys)
    # DeepPrior crop: beyond the cube is background, nearer than the cube is clamped to its face.
    beyond = (depth <= 0) | (depth > far)
    depth = torch.where(beyond, 0.0, torch.maximum(depth, near))
    return {"depth_mm": depth, "parts": parts.to(torch.uint8), "points": points, "com": com,
            "cube": cube_t, "visible": visible, "theta": params.theta, "pose": params.pose,
            "shape": params.shape.as_tensor()}


def cube_sizes(cube, keys: torch.Tensor) -> torch.Tensor:
    """(B,) cube side per frame: a fixed size, or for ``(low, high)`` CrossInfoNet's training
    cubes low + 10 mm x randint(0, (high - low) / 10 + 1), drawn from a sub-stream of the frame key
    (so the pose draws do not change)."""
    if isinstance(cube, torch.Tensor) and cube.dim() == 1 and cube.numel() == keys.numel():
        return cube.to(torch.float32)
    if isinstance(cube, (tuple, list)):
        low, high = (float(c) for c in check_cube(cube))
        steps = int(round((high - low) / 10.0)) + 1
        u = FrameRandom(mix32(keys ^ 0x0C0BE5)).uniform(1)[:, 0]
        return low + 10.0 * torch.floor(u * steps).clamp(max=steps - 1)
    return torch.full((keys.numel(),), float(check_cube(cube)))


def check_cube(cube):
    """A positive cube size in mm, or a (low, high) range with 0 < low <= high."""
    if isinstance(cube, (tuple, list)):
        if len(cube) != 2 or not 0 < float(cube[0]) <= float(cube[1]):
            raise ValueError(f"cube range must be (low, high) mm with 0 < low <= high, got {cube!r}")
        return cube
    if not float(cube) > 0:
        raise ValueError(f"cube must be a positive size in mm, got {cube!r}")
    return cube


def joint_visibility(points, depth, com, cube, size) -> torch.Tensor:
    """(B, 25) joint inside the crop and not hidden: clean depth at its pixel > z - 20 mm."""
    per_pixel = (cube / size)[:, None]
    col = (points[..., 0] / points[..., 2] * com[:, 2:3] - (com[:, 0:1] - cube[:, None] / 2)) / per_pixel - 0.5
    row = (points[..., 1] / points[..., 2] * com[:, 2:3] - (com[:, 1:2] - cube[:, None] / 2)) / per_pixel - 0.5
    ci, ri = torch.round(col).long(), torch.round(row).long()
    inside = (ci >= 0) & (ci < size) & (ri >= 0) & (ri < size)
    flat = (ri.clamp(0, size - 1) * size + ci.clamp(0, size - 1))
    surface = torch.gather(depth.reshape(depth.shape[0], -1), 1, flat)
    return inside & (surface > 0) & (surface > points[..., 2] - VISIBILITY_TOLERANCE_MM)


def render_frames(indices, *, seed: int, split: str, domain: str, size: int,
                  cube=250.0, sensor: SensorModel | None = None) -> dict:
    """Independent random frames ``indices`` of the (seed, split, domain) stream."""
    check_domain(domain)
    check_size(size)
    keys = frame_keys(seed, (split, domain), torch.as_tensor(indices, dtype=torch.int64))
    return render_params(sample_frames(keys, domain), keys, domain, size, cube, sensor)


def render_clips(clip_indices, *, frames: int, seed: int, split: str, domain: str, size: int,
                 cube=250.0, keyframe_every: int = 20, fast_moves: float = FAST_MOVES,
                 detector_centre: bool = False, sensor: SensorModel | None = None) -> dict:
    """Smooth clips with occasional fast moves (:func:`handlib.synth.poses.sample_sequences`): every
    array gets shape (N, T, ...) (N clips of T frames). ``detector_centre=True`` centres every crop with
    the real-like domain's detector-like error (N(0, 6 mm) per axis, the same draws) even on clean hands;
    by default a synthetic crop is centred on the true joint mean."""
    check_domain(domain)
    check_size(size)
    if frames <= 0:
        raise ValueError(f"clip length (frames) must be positive, got {frames}")
    idx = torch.as_tensor(clip_indices, dtype=torch.int64)
    clip_keys = frame_keys(seed, (split, domain, "clip"), idx)
    params = sample_sequences(clip_keys, frames, domain, keyframe_every, fast_moves)
    keys = sub_keys(clip_keys, torch.arange(frames)).reshape(-1)
    if detector_centre:
        params.com_offset = com_error(FrameRandom(keys), "real-like")
    out = render_params(params, keys, domain, size, cube, sensor)
    return {k: v.reshape((idx.numel(), frames) + tuple(v.shape[1:])) for k, v in out.items()}
