"""Pose and shape sampling: random valid hands per frame, and smooth sequences (keyframes + Catmull-Rom).

Every draw comes from :class:`handlib.synth.rng.FrameRandom`, so a frame's pose depends only on
its key. Angles are degrees; global pose is (yaw, pitch, roll) in degrees and (x, y, z) in mm.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from handlib.synth.kinematics import THETA_LIMITS, HandShape
from handlib.synth.rng import FrameRandom, sub_keys

DOMAINS = ("synthetic", "real-like")
# Finger-wise direction of a "spread" hand's abduction (+ = radial): I, M, R, P.
_SPREAD_DIRECTION = torch.tensor([1.0, 0.2, -0.6, -1.0])
GLOBAL_NAMES = ("yaw", "pitch", "roll", "x", "y", "z")
PITCH_RANGE, ROLL_RANGE, Z_RANGE, XY_FRACTION = 45.0, 60.0, (350.0, 600.0), 0.25


@dataclass
class PoseParams:
    """Everything that fixes one frame's geometry (leading batch axis B)."""

    theta: torch.Tensor      # (B, 20) articulation, degrees
    shape: HandShape
    pose: torch.Tensor       # (B, 6) yaw, pitch, roll (deg), x, y, z (mm) of the palm reference
    com_offset: torch.Tensor  # (B, 3) CoM error added to the ground-truth CoM (mm)


def clip_theta(theta: torch.Tensor) -> torch.Tensor:
    """Clamp (..., 20) angles into the physiological limits."""
    return torch.maximum(torch.minimum(theta, THETA_LIMITS[:, 1]), THETA_LIMITS[:, 0])


def sample_shape(rng: FrameRandom, domain: str) -> HandShape:
    """Synthetic: HL ~ N(180, 6), digit lengths +-2 %; real-like: HL ~ N(168, 14), +-7 %,
    radius x (1.08 +- 0.10), palm width x (1 +- 0.06) (the renderer's domain-shift design)."""
    if domain == "synthetic":
        hand_length = rng.normal(1, 180.0, 6.0)[:, 0]
        digits = rng.uniform(5, 0.98, 1.02)
        radius = torch.ones_like(hand_length)
        width = torch.ones_like(hand_length)
    else:
        hand_length = rng.normal(1, 168.0, 14.0)[:, 0]
        digits = rng.uniform(5, 0.93, 1.07)
        radius = rng.uniform(1, 0.98, 1.18)[:, 0]
        width = rng.uniform(1, 0.94, 1.06)[:, 0]
    return HandShape(hand_length.clamp(140.0, 215.0), digits, radius, width)


def sample_theta(rng: FrameRandom) -> torch.Tensor:
    """(B, 20) random valid articulation: a hand style (open / fist / independent), per-finger curl
    with DIP = 2/3 PIP + N(0, 5 deg), abduction that closes as the fingers flex; thumb uniform."""
    style = rng.uniform(1)                                   # < 1/3 open, < 2/3 fist, else free
    hand_curl = rng.uniform(1)
    share = rng.uniform(4) < 0.25                            # finger follows the hand-level curl
    own = rng.uniform(4)
    open_curl, fist_curl = 0.35 * own, 0.65 + 0.35 * own
    curl = torch.where(style < 1 / 3, open_curl, torch.where(style < 2 / 3, fist_curl, own))
    curl = torch.where(share, hand_curl.expand_as(curl), curl)
    noise = rng.normal(16).reshape(-1, 4, 4)
    mcp = -10.0 + 100.0 * (curl + 0.15 * noise[:, 0]).clamp(0.0, 1.0)
    pip = 110.0 * (curl + 0.15 * noise[:, 1]).clamp(0.0, 1.0)
    dip = 2.0 / 3.0 * pip + 5.0 * noise[:, 2]
    spread = rng.uniform(1, -0.3, 1.0)
    abd = spread * 13.0 * (1.0 - curl) * _SPREAD_DIRECTION + 3.0 * noise[:, 3]
    fingers = torch.stack((mcp, abd, pip, dip), -1).reshape(-1, 16)
    lo, hi = THETA_LIMITS[:4, 0], THETA_LIMITS[:4, 1]
    thumb = lo + (hi - lo) * rng.uniform(4)
    return clip_theta(torch.cat((thumb, fingers), 1))


def sample_global(rng: FrameRandom) -> torch.Tensor:
    """(B, 6): yaw U(-90, 90) (+180 with p 0.3: dorsal view), pitch U(-45, 45), roll U(-60, 60),
    z U(350, 600) mm, x and y within +-0.25 z."""
    u = rng.uniform(7)
    yaw = -90.0 + 180.0 * u[:, 0] + torch.where(u[:, 1] < 0.3, 180.0, 0.0)
    pitch = PITCH_RANGE * (2 * u[:, 2] - 1)
    roll = ROLL_RANGE * (2 * u[:, 3] - 1)
    z = Z_RANGE[0] + (Z_RANGE[1] - Z_RANGE[0]) * u[:, 4]
    x = XY_FRACTION * z * (2 * u[:, 5] - 1)
    y = XY_FRACTION * z * (2 * u[:, 6] - 1)
    return torch.stack((yaw, pitch, roll, x, y, z), 1)


def com_error(rng: FrameRandom, domain: str) -> torch.Tensor:
    """(B, 3) CoM error: none for synthetic, N(0, 6 mm) per axis for real-like (a detector's)."""
    draw = rng.normal(3, 0.0, 6.0)  # always drawn so both domains consume the same counters
    return draw if domain == "real-like" else torch.zeros_like(draw)


def sample_frames(keys: torch.Tensor, domain: str) -> PoseParams:
    """Independent random frames, one per key."""
    rng = FrameRandom(keys)
    shape = sample_shape(rng, domain)
    theta = sample_theta(rng)
    pose = sample_global(rng)
    return PoseParams(theta, shape, pose, com_error(rng, domain))


def _catmull_rom(p0, p1, p2, p3, f):
    """C1 spline between p1 and p2 at fraction f (broadcasting)."""
    return 0.5 * (2 * p1 + (p2 - p0) * f + (2 * p0 - 5 * p1 + 4 * p2 - p3) * f * f
                  + (3 * p1 - p0 - 3 * p2 + p3) * f * f * f)


# Clips: a share of the keyframe intervals is crossed FAST_SPEEDUP times faster (a quick grasp, a flick
# of the wrist), so a temporal model meets the occasional fast move as well as slow drift.
FAST_MOVES = 0.15
FAST_SPEEDUP = 3


def sample_sequences(clip_keys: torch.Tensor, frames: int, domain: str,
                     keyframe_every: int = 20, fast_moves: float = FAST_MOVES) -> PoseParams:
    """Smooth clips: articulation keyframes from :func:`sample_theta` every ``keyframe_every``
    frames, global pose as a bounded random walk, Catmull-Rom in angle space, then clipping. Each
    interval between keyframes is, with probability ``fast_moves``, crossed in ``keyframe_every //
    FAST_SPEEDUP`` frames instead (same spline, so still C1 in angle space, only faster).

    Returns PoseParams with a (N * frames) batch, clip-major; the shape is constant per clip."""
    if not 0.0 <= fast_moves <= 1.0:
        raise ValueError(f"fast_moves must be a probability in [0, 1], got {fast_moves!r}")
    n = clip_keys.shape[0]
    fast_every = max(1, keyframe_every // FAST_SPEEDUP)
    if fast_moves > 0:   # enough keys even if every interval is fast
        n_keys = (frames - 1 + keyframe_every) // fast_every + 5
    else:
        n_keys = (frames - 1) // keyframe_every + 5  # spline needs one key either side
    key_ids = sub_keys(clip_keys, torch.arange(n_keys)).reshape(-1)
    theta_keys = sample_theta(FrameRandom(key_ids)).reshape(n, n_keys, 20)
    rng = FrameRandom(clip_keys)
    shape = sample_shape(rng, domain)
    start = sample_global(rng)
    phase = torch.floor(rng.uniform(1)[:, 0] * keyframe_every)
    steps = rng.normal(6 * n_keys).reshape(n, n_keys, 6) * torch.tensor([20.0, 12.0, 15.0, 15.0, 15.0, 25.0])
    yaw_centre = torch.where(start[:, 0] > 90.0, 180.0, 0.0)
    walk = [start]
    for k in range(1, n_keys):  # a short loop over keyframes; every op is batched over clips
        g = walk[-1] + steps[:, k]
        yaw = torch.minimum(torch.maximum(g[:, 0], yaw_centre - 90.0), yaw_centre + 90.0)
        z = g[:, 5].clamp(*Z_RANGE)
        xy_limit = XY_FRACTION * z[:, None]
        xy = torch.minimum(torch.maximum(g[:, 3:5], -xy_limit), xy_limit)
        walk.append(torch.cat((yaw[:, None], g[:, 1:2].clamp(-PITCH_RANGE, PITCH_RANGE),
                               g[:, 2:3].clamp(-ROLL_RANGE, ROLL_RANGE), xy, z[:, None]), 1))
    pose_keys = torch.stack(walk, 1)                                # (N, n_keys, 6)
    keyed = torch.cat((theta_keys, pose_keys), -1)                  # (N, n_keys, 26)
    segment, frac = _segments(rng, n, n_keys, frames, phase, keyframe_every, fast_every, fast_moves)
    pick = [keyed.gather(1, (segment + k)[..., None].expand(-1, -1, 26)) for k in range(4)]
    path = _catmull_rom(*pick, frac[..., None])                      # (N, T, 26)
    theta = clip_theta(path[..., :20]).reshape(n * frames, 20)
    pose = path[..., 20:].reshape(n * frames, 6)
    frame_keys = sub_keys(clip_keys, torch.arange(frames)).reshape(-1)
    offsets = com_error(FrameRandom(frame_keys), domain)
    per_frame = HandShape.from_tensor(shape.as_tensor().repeat_interleave(frames, 0))
    return PoseParams(theta, per_frame, pose, offsets)


def _segments(rng: FrameRandom, n: int, n_keys: int, frames: int, phase: torch.Tensor, keyframe_every: int,
              fast_every: int, fast_moves: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T) spline segment and fraction inside it of every frame. Interval s lasts ``keyframe_every``
    frames, or ``fast_every`` when drawn fast; a clip starts ``phase`` frames into its first interval."""
    time = phase[:, None] + torch.arange(frames)                    # (N, T) frames since interval 0
    if fast_moves <= 0:
        position = time / keyframe_every
        segment = torch.floor(position).long()
        return segment, position - segment
    fast = rng.uniform(n_keys) < fast_moves                         # (N, n_keys): drawn after the walk
    duration = torch.where(fast, float(fast_every), float(keyframe_every))[:, : n_keys - 3]
    ends = duration.cumsum(1)
    segment = torch.searchsorted(ends, time.to(ends.dtype), right=True).clamp(max=n_keys - 4)
    begin = ends.gather(1, segment) - duration.gather(1, segment)
    return segment, ((time - begin) / duration.gather(1, segment)).clamp(0.0, 1.0)
