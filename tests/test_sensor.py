"""Tests for the real-like sensor model (handlib.synth.sensor) and its cache version."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from handlib.synth import cache
from handlib.synth.render import ray_cast, surface_normals
from handlib.synth.sensor import SensorModel

FRAMES, SIZE = 48, 96
NO_DROPOUT = dict(background_probability=0.0, silhouette_dropout=0.0, hole_fraction=0.0)


def _capsule_scene(capsules, frames=FRAMES, size=SIZE):
    """Clean depth, cos(view angle), CoM and cube of fixed capsules ((a, b, radius) in camera mm)."""
    a = torch.tensor([c[0] for c in capsules], dtype=torch.float32).expand(frames, -1, 3).contiguous()
    b = torch.tensor([c[1] for c in capsules], dtype=torch.float32).expand(frames, -1, 3).contiguous()
    radius = torch.tensor([c[2] for c in capsules], dtype=torch.float32).expand(frames, -1).contiguous()
    com = torch.tensor([0.0, 0.0, 450.0]).expand(frames, 3).contiguous()
    cube = torch.full((frames,), 250.0)
    depth, winner = ray_cast(a, b, radius, com, cube, size)
    _, cos_view = surface_normals(depth, winner, a, b, com, cube)
    return depth, cos_view, com, cube


# A forearm: a long, smooth capsule crossing the crop at a slant, so that pixels along its rims are
# seen at grazing angles (view angle > 80 degrees), where the axial noise is 100 mm or more.
FOREARM = ((-150.0, -400.0, 470.0), (150.0, 400.0, 470.0), 32.0)


def horizontal_streaks(depth: torch.Tensor, surface: torch.Tensor, width: int = 3) -> torch.Tensor:
    """(B,) number of invalid runs on ``surface`` exactly one row high and >= ``width`` wide
    (counted as windows of ``width`` such pixels in a row)."""
    valid = depth > 0
    padded = torch.nn.functional.pad(valid, (0, 0, 1, 1), value=False)
    one_row = surface & ~valid & padded[:, :-2] & padded[:, 2:]       # valid above and below
    windows = torch.nn.functional.conv1d(one_row.float().reshape(-1, 1, depth.shape[-1]),
                                         torch.ones(1, 1, width))
    return (windows >= width).reshape(depth.shape[0], -1).sum(-1)


@pytest.mark.parametrize("knobs", [dict(grazing_deg=999.0), dict()],
                         ids=["dropout-off", "grazing-dropout-on"])
def test_no_horizontal_streaks_on_smooth_forearm(knobs):
    """Projector shadows come from the geometry: a noisy grazing-angle pixel must not shadow its row."""
    depth, cos_view, com, cube = _capsule_scene([FOREARM])
    surface = depth > 0
    grazing = torch.rad2deg(torch.acos(cos_view.clamp(-1, 1))) > 80
    assert int((surface & grazing).sum()) >= FRAMES * 20     # the test has grazing pixels to trip on
    keys = torch.arange(FRAMES, dtype=torch.int64) + 1000
    out = SensorModel(**NO_DROPOUT, **knobs).apply(depth, cos_view, com, cube, keys)
    assert int(horizontal_streaks(out, surface).sum()) == 0
    # A smooth convex surface has no geometric shadow beyond its receding rim: few pixels lost.
    if knobs:
        assert float((surface & (out <= 0)).sum() / surface.sum()) < 0.01


def test_projector_shadow_still_falls_right_of_an_occluder():
    """A finger 50 mm in front of the forearm still shadows it, on the right (projector side)."""
    finger = ((-20.0, -30.0, 380.0), (-20.0, 30.0, 380.0), 8.0)
    depth, cos_view, com, cube = _capsule_scene([((0.0, -400.0, 470.0), (0.0, 400.0, 470.0), 40.0),
                                                 finger], frames=4)
    keys = torch.arange(4, dtype=torch.int64)
    sensor = SensorModel(**NO_DROPOUT, grazing_deg=999.0, noise_scale=0.0)
    out = sensor.apply(depth, cos_view, com, cube, keys)
    row = SIZE // 2
    near = (depth[0, row] > 0) & (depth[0, row] < 420)   # the finger's pixels in the middle row
    right = int(near.nonzero().max())
    lost = (depth[0, row] > 0) & (out[0, row] <= 0)
    # Disparity step in crop px: b * cz * S / C * (1/z_finger - 1/z_arm), about 4 px here.
    assert 2 <= int(lost[right + 1:].sum()) <= 8 and bool(lost[right + 1])
    assert not bool(lost[: int(near.nonzero().min())].any())          # nothing on the left
    # Still there with the sensor noise switched on (lateral jitter may move its edge a pixel).
    noisy = SensorModel(**NO_DROPOUT, grazing_deg=999.0).apply(depth, cos_view, com, cube, keys)
    assert int(((depth[0, row] > 0) & (noisy[0, row] <= 0))[right + 1:].sum()) >= 2


def _old_shard_path(root: Path, settings: dict) -> Path:
    """The shard name formula before SENSOR_VERSION existed (RENDER_VERSION 1)."""
    text = json.dumps({**settings, "version": 1}, sort_keys=True)
    return root / f"{settings['kind']}-{hashlib.sha256(text.encode()).hexdigest()[:20]}.npz"


def _settings(domain):
    return dict(kind="frames", seed=0, split="train", domain=domain, size=96, cube=250.0,
                start=0, count=256)


def test_synthetic_shard_names_unchanged_real_like_keyed_by_sensor_version(monkeypatch, tmp_path):
    assert cache.RENDER_VERSION == 1
    synthetic, real = _settings("synthetic"), _settings("real-like")
    assert cache.shard_path(tmp_path, synthetic) == _old_shard_path(tmp_path, synthetic)
    assert cache.shard_path(tmp_path, real) != _old_shard_path(tmp_path, real)
    before = cache.shard_path(tmp_path, real)
    monkeypatch.setattr(cache, "SENSOR_VERSION", cache.SENSOR_VERSION + 1)
    assert cache.shard_path(tmp_path, real) != before
    assert cache.shard_path(tmp_path, synthetic) == _old_shard_path(tmp_path, synthetic)


def test_sidecar_checks_sensor_version_for_real_like_only(monkeypatch, tmp_path):
    arrays = {"depth": np.arange(6, dtype=np.uint16)}
    synthetic, real = _settings("synthetic"), _settings("real-like")
    paths = {d: cache.shard_path(tmp_path, s) for d, s in (("s", synthetic), ("r", real))}
    cache.save_shard(paths["s"], synthetic, arrays)
    cache.save_shard(paths["r"], real, arrays)
    # Synthetic sidecars hold exactly what they held before.
    assert set(json.loads(paths["s"].with_suffix(".json").read_text())) == {"settings", "version", "sha256"}
    assert json.loads(paths["r"].with_suffix(".json").read_text())["sensor_version"] == cache.SENSOR_VERSION
    assert cache.load_shard(paths["r"], real) is not None
    monkeypatch.setattr(cache, "SENSOR_VERSION", cache.SENSOR_VERSION + 1)
    assert cache.load_shard(paths["r"], real) is None                  # stale sensor: re-render
    assert cache.load_shard(paths["s"], synthetic) is not None         # synthetic: untouched
