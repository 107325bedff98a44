"""The "real-like" depth-sensor domain (the renderer's design), applied at crop resolution in mm.

Background surfaces, lateral and axial noise (Nguyen, Izadi & Lovell 2012), disparity quantisation
and dropout (grazing angles, silhouette erosion, projector shadows, blob holes). All randomness is
per pixel from the frame key, so a frame's corruption does not depend on its batch.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from handlib.synth.render import crop_rays
from handlib.synth.rng import (FrameRandom, pixel_bits, pixel_normal, pixel_normal_pair,
                                pixel_uniform, split_uniforms)


@dataclass(frozen=True)
class SensorModel:
    """Knobs of the corruption; the defaults are the spec's Kinect-like (NYU-flavoured) sensor."""

    noise_scale: float = 1.0
    background_probability: float = 0.5
    focal_px: float = 588.0          # native focal length: converts native pixels to crop pixels
    baseline_mm: float = 75.0        # projector-camera baseline (quantisation and shadows)
    subpixel_steps: float = 8.0      # disparity quantisation: 1/8 pixel
    grazing_deg: float = 72.0        # dropout probability is sigmoid((theta - 72) / 3)
    silhouette_dropout: float = 0.4
    hole_fraction: float = 0.01

    def __post_init__(self):
        for name in ("noise_scale", "focal_px", "baseline_mm", "subpixel_steps"):
            if not getattr(self, name) > 0 and not (name == "noise_scale" and getattr(self, name) == 0):
                raise ValueError(f"SensorModel.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("background_probability", "silhouette_dropout", "hole_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SensorModel.{name} must lie in [0, 1], got {getattr(self, name)!r}")

    def apply(self, depth: torch.Tensor, cos_view: torch.Tensor, com: torch.Tensor,
              cube: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """(B, S, S) clean depth (0 = no hit) -> corrupted depth (0 = missing)."""
        batch, size = depth.shape[0], depth.shape[-1]
        shape = (size, size)
        hand = depth > 0
        depth = self._background(depth, com, cube, keys)
        # Projector shadows are geometry: test the clean surface (hand + background), before any
        # noise. Tested on noisy depth, a grazing-angle pixel (axial sigma of 100+ mm) jumps far
        # towards the camera and "shadows" the rest of its row: 1-pixel horizontal streaks.
        shadow = self._projector_shadow(depth, com, cube)
        # Lateral noise: nearest-neighbour resampling at positions jittered by sigma_L.
        theta = torch.acos(cos_view.double().clamp(-1.0, 1.0)).float()
        theta = torch.where(hand, theta, 0.0)
        sigma_native = 0.8 + 0.035 * theta / (math.pi / 2 - theta).clamp(min=1e-3)
        crop_px_per_native = (com[:, 2] / self.focal_px * size / cube)[:, None, None]
        sigma_crop = self.noise_scale * sigma_native * crop_px_per_native
        rows = torch.arange(size).reshape(1, size, 1).expand(batch, size, size)
        cols = torch.arange(size).reshape(1, 1, size).expand(batch, size, size)
        jitter_r, jitter_c = pixel_normal_pair(keys, 0, shape)
        jr = torch.round(rows + sigma_crop * jitter_r).long().clamp(0, size - 1)
        jc = torch.round(cols + sigma_crop * jitter_c).long().clamp(0, size - 1)
        flat = (jr * size + jc).reshape(batch, -1)
        depth = torch.gather(depth.reshape(batch, -1), 1, flat).reshape(batch, size, size)
        theta = torch.gather(theta.reshape(batch, -1), 1, flat).reshape(batch, size, size)
        shadow = torch.gather(shadow.reshape(batch, -1), 1, flat).reshape(batch, size, size)
        valid = depth > 0
        # Axial noise sigma_z(z, theta) in mm (Nguyen et al.; the angle term only above 60 deg).
        z_m = depth / 1000.0
        sigma = 1000.0 * (0.0012 + 0.0019 * (z_m - 0.4) * (z_m - 0.4))
        steep = theta > math.radians(60.0)
        extra = 1000.0 * 0.0001 / torch.sqrt(z_m.clamp(min=0.1)) * theta * theta / (
            (math.pi / 2 - theta).clamp(min=0.05) * (math.pi / 2 - theta).clamp(min=0.05))
        sigma = sigma + torch.where(steep, extra, 0.0)
        depth = depth + self.noise_scale * sigma * pixel_normal(keys, 2, shape)
        # Disparity quantisation: z = f b / (round(steps f b / z) / steps).
        fb = self.focal_px * self.baseline_mm
        disparity = torch.round(self.subpixel_steps * fb / depth.clamp(min=1.0)) / self.subpixel_steps
        depth = torch.where(valid, fb / disparity.clamp(min=1e-6), 0.0)
        drop = self._dropout(depth, theta, keys) | shadow
        return torch.where(drop | ~valid, 0.0, depth)

    def _background(self, depth, com, cube, keys):
        """With probability p a tilted plane (wall / table) at cz + (0.25..0.85) C behind the hand."""
        size = depth.shape[-1]
        rng = FrameRandom(keys)
        u = rng.uniform(4)
        present = u[:, 0] < self.background_probability
        offset = com[:, 2] + (0.25 + 0.6 * u[:, 1]) * cube
        tilt_x, tilt_y = 1.2 * (2 * u[:, 2] - 1), 1.2 * (2 * u[:, 3] - 1)  # dz per mm of x / y
        dx, dy = crop_rays(com, cube, size)
        # Plane z = offset + tx (x - cx) + ty (y - cy); on ray (dx t, dy t, t): solve for t.
        num = (offset - tilt_x * com[:, 0] - tilt_y * com[:, 1])[:, None, None]
        den = 1.0 - tilt_x[:, None, None] * dx[:, None, :] - tilt_y[:, None, None] * dy[:, :, None]
        plane = torch.where(den > 0.05, num / den.clamp(min=0.05), 0.0)
        plane = torch.where(present[:, None, None] & (plane > 0), plane, 0.0)
        return torch.where(depth > 0, depth, plane)

    def _dropout(self, depth, theta, keys):
        """Random dropout: grazing angles, silhouette erosion and blob holes (shadows are apart)."""
        size = depth.shape[-1]
        shape = (size, size)
        valid = depth > 0
        grazing = torch.sigmoid((torch.rad2deg(theta.double()) - self.grazing_deg) / 3.0).float()
        u_grazing, u_edge = split_uniforms(pixel_bits(keys, 3, shape))
        drop = u_grazing < grazing
        # Silhouette erosion: pixels with a 4-neighbour that is background.
        pad = torch.nn.functional.pad(valid, (1, 1, 1, 1), value=False)
        edge = valid & ~(pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1] & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:])
        drop = drop | (edge & (u_edge < self.silhouette_dropout))
        # Blob holes: a thresholded, bilinearly upsampled low-resolution noise field.
        drop = drop | (self._blob_field(keys, size) > self._blob_threshold(size))
        return drop

    def _projector_shadow(self, depth, com, cube):
        """(B, S, S) bool: surface pixels the projector cannot see, from the *clean* depth.

        Pixel j is hidden from the projector when a surface k >= 1 pixels to its left has a
        disparity larger by >= k, i.e. disp[i] + i >= disp[j] + j for some i < j: an exclusive
        running maximum along each row. At hand range a 1-pixel disparity step already means a
        >= 15 mm depth step, so the spec's step test is implied."""
        size = depth.shape[-1]
        valid = depth > 0
        scale = (self.baseline_mm * com[:, 2] * size / cube)[:, None, None]   # crop px per (1/mm)
        disparity = torch.where(valid, scale / depth.clamp(min=1.0), 0.0)     # 0 = no surface
        reach = disparity + torch.arange(size, dtype=torch.float32)
        left_max = torch.cummax(reach, dim=-1).values
        shadow = torch.zeros_like(valid)
        shadow[..., 1:] = left_max[..., :-1] >= reach[..., 1:]
        return shadow & valid

    def _blob_field(self, keys, size):
        """Low-resolution uniform noise, bilinearly upsampled (separably, rows then columns)."""
        coarse = max(2, size // 8)
        grid = pixel_uniform(keys, 4, (coarse + 1, coarse + 1))
        pos = (torch.arange(size, dtype=torch.float32) + 0.5) * (coarse / size)
        i0 = pos.floor().long().clamp(max=coarse - 1)
        f = pos - i0
        rows = (1 - f)[:, None] * grid[:, i0] + f[:, None] * grid[:, i0 + 1]       # (B, S, G+1)
        return (1 - f) * rows[:, :, i0] + f * rows[:, :, i0 + 1]                   # (B, S, S)

    def _blob_threshold(self, size: int) -> float:
        return _blob_threshold(size, self.hole_fraction)


@functools.lru_cache(maxsize=16)
def _blob_threshold(size: int, fraction: float) -> float:
    """Level above which ``fraction`` of the blob field lies, measured once on fixed keys."""
    if fraction <= 0:
        return float("inf")
    # torch.quantile takes at most 2**24 values: full-frame sizes (640x480) calibrate on fewer keys.
    keys = max(1, min(64, 2**24 // (size * size)))
    field = SensorModel()._blob_field(torch.arange(keys, dtype=torch.int64) + 0x5EED, size)
    return float(torch.quantile(field.reshape(-1), 1.0 - fraction))
