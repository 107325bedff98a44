"""Tests for handlib.synth: kinematics, renderer, sensor domain, datasets and cache."""
from __future__ import annotations

import pytest
import torch

from handlib.geometry import denormalize_joints, transform_points_2d, uvd_to_xyz
from handlib.joints import CANONICAL_PARENTS, CONVENTIONS
from handlib.sample import check_sample
from handlib.synth import render_clips, render_frames
from handlib.synth import kinematics as K
from handlib.synth.dataset import SyntheticClips, SyntheticHands
from handlib.synth.poses import sample_frames, sample_sequences
from handlib.synth.render import ray_cast, ray_cast_reference, surface_normals
from handlib.synth.rng import frame_keys


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDLIB_CACHE_DIR", str(tmp_path / "cache"))


def _bones(points):
    child = torch.arange(1, 21)
    parent = torch.tensor(CANONICAL_PARENTS[1:])
    return (points[:, child] - points[:, parent]).norm(dim=-1)


def test_bone_lengths_preserved_under_articulation():
    keys = frame_keys(0, ("test", "synthetic"), torch.arange(64))
    params = sample_frames(keys, "synthetic")
    rest, _ = K.hand_frame_fk(torch.zeros_like(params.theta), params.shape)
    posed, _ = K.hand_frame_fk(params.theta, params.shape)
    assert torch.allclose(_bones(rest), _bones(posed), atol=1e-3)
    # Movable bones equal the Buchholz ratios x hand length x digit factor (+ distal soft tissue).
    lengths = K.bone_lengths(params.shape)            # (B, 5, 3)
    chains = [(1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20)]
    for digit, chain in enumerate(chains):
        seg = (posed[:, list(chain[1:])] - posed[:, list(chain[:-1])]).norm(dim=-1)
        assert torch.allclose(seg, lengths[:, digit], atol=1e-3)


@pytest.mark.parametrize("domain", ["synthetic", "real-like"])
def test_sampled_poses_within_limits(domain):
    keys = frame_keys(3, ("train", domain), torch.arange(2000))
    theta = sample_frames(keys, domain).theta
    lo, hi = K.THETA_LIMITS[:, 0], K.THETA_LIMITS[:, 1]
    assert bool(((theta >= lo) & (theta <= hi)).all())
    seq = sample_sequences(keys[:8], 40, domain).theta
    assert bool(((seq >= lo) & (seq <= hi)).all())


def test_capsule_head_on_analytic_depth():
    # A horizontal capsule (axis along x) at depth 500 mm, radius 10, centred on the crop.
    size, cube, z, r = 32, 100.0, 500.0, 10.0
    a = torch.tensor([[[-200.0, 0.0, z]]])
    b = torch.tensor([[[200.0, 0.0, z]]])
    com = torch.tensor([[0.0, 0.0, z]])
    depth, winner = ray_cast(a, b, torch.tensor([[r]]), com, torch.tensor([cube]), size)
    dy = (torch.arange(size) + 0.5) * cube / size - cube / 2
    slope = dy / z                                       # ray (dx, slope, 1) t
    # (t slope)^2 + (t - z)^2 = r^2, nearer root.
    qa, qb, qc = slope**2 + 1, -2 * z, z * z - r * r
    disc = qb * qb - 4 * qa * qc
    expected = torch.where(disc > 0, (-qb - torch.sqrt(disc.clamp(min=0))) / (2 * qa), 0.0)
    got = depth[0, :, size // 2]
    assert torch.allclose(got, expected.float(), atol=2e-3)
    assert bool((winner[0, disc > 0] == 0).all()) and bool((winner[0, disc <= 0] == -1).all())
    # Seen end-on (axis along the rays): only the near cap is visible, an exact sphere.
    a2 = torch.tensor([[[0.0, 0.0, z]]])
    b2 = torch.tensor([[[0.0, 0.0, z + 80.0]]])
    depth2, _ = ray_cast(a2, b2, torch.tensor([[r]]), com, torch.tensor([cube]), size)
    d = torch.stack(torch.meshgrid(dy / z, dy / z, indexing="ij")[::-1] + (torch.ones(size, size),), -1).double()
    dd, dc = (d * d).sum(-1), d[..., 2] * z
    disc = dc * dc - dd * (z * z - r * r)
    sphere = torch.where(disc > 0, (dc - torch.sqrt(disc.clamp(min=0))) / dd, 0.0)
    assert torch.allclose(depth2[0].double(), sphere, atol=2e-3)


def _scene(n=24, size=96, domain="synthetic"):
    keys = frame_keys(1, ("test", domain), torch.arange(n))
    p = sample_frames(keys, domain)
    rot = K.global_rotation(p.pose[:, 0], p.pose[:, 1], p.pose[:, 2])
    pts, (a, b, r) = K.forward_kinematics(p.theta, p.shape, rot, p.pose[:, 3:])
    com = K.joint_mean(pts)
    return a, b, r, com, torch.full((n,), 250.0), size


def test_tile_culling_matches_reference():
    a, b, r, com, cube, size = _scene(16)
    d1, w1 = ray_cast(a, b, r, com, cube, size)
    d2, w2 = ray_cast_reference(a, b, r, com, cube, size)
    assert (w1 == w2).float().mean() >= 0.9999
    assert (d1 - d2).abs().max() < 0.01


def test_part_labels_agree_with_nearest_bone():
    a, b, r, com, cube, size = _scene(16)
    depth, winner = ray_cast(a, b, r, com, cube, size)
    normals, _ = surface_normals(depth, winner, a, b, com, cube)
    hit = winner >= 0
    frame = torch.arange(16)[:, None, None].expand_as(winner)[hit]
    from handlib.synth.render import crop_rays
    dx, dy = crop_rays(com, cube, size)
    rows, cols = torch.nonzero(hit, as_tuple=True)[1:]
    point = depth[hit][:, None] * torch.stack((dx[frame, cols], dy[frame, rows], torch.ones_like(dx[frame, cols])), -1)
    pa, pb = a[frame], b[frame]                      # (N, P, 3)
    ba = pb - pa
    t = (((point[:, None] - pa) * ba).sum(-1) / (ba * ba).sum(-1)).clamp(0, 1)
    dist = (point[:, None] - (pa + t[..., None] * ba)).norm(dim=-1) - r[frame]
    nearest = K.CAPSULE_PARTS[dist.argmin(-1)]
    labels = K.CAPSULE_PARTS[winner[hit]]
    assert (nearest == labels).float().mean() >= 0.99


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_dataset_sample_structure_and_conventions(convention):
    ds = SyntheticHands("test", 12, size=64, convention=convention, seed=2, progress=False)
    conv = CONVENTIONS[convention]
    s = ds[3]
    check_sample(s, 64, conv.num_joints)
    assert s["depth"].dtype == torch.float32 and s["parts"].dtype == torch.int64
    assert float(s["depth"].min()) >= -1 and float(s["depth"].max()) == 1.0
    assert bool(s["parts_trainable"]) and int(s["index"]) == 3
    assert sorted(conv.palm + conv.finger) == list(range(conv.num_joints))
    # Normalise -> denormalise returns the joints (<= 1e-4 mm).
    back = denormalize_joints(s["joints"][None], s["com"][None], s["cube"][None])[0]
    assert (back - s["joints_xyz"]).abs().max() <= 1e-4 * max(1.0, float(s["joints_xyz"].abs().max()) / 100)
    # uvd is the camera projection; M maps it onto the crop pixels.
    assert torch.allclose(uvd_to_xyz(s["joints_uvd"].double(), ds.camera).float(), s["joints_xyz"], atol=1e-2)
    crop = transform_points_2d(s["joints_uvd"], s["transform"])
    assert torch.allclose(crop[:, :2], s["joints_crop"][:, :2], atol=1e-3)


def test_visible_joints_project_onto_hand_pixels():
    ds = SyntheticHands("test", 64, size=96, convention="full", seed=5, progress=False)
    batch = ds.batch(range(64))
    vis = batch["visible"]
    assert 0.4 < float(vis.float().mean()) < 0.95
    col = torch.round(batch["joints_crop"][..., 0]).long()
    row = torch.round(batch["joints_crop"][..., 1]).long()
    frames = torch.arange(64)[:, None].expand_as(col)
    labels = batch["parts"][frames[vis], row[vis], col[vis]]
    assert bool((labels > 0).all())
    # Visible joints lie near the rendered surface (within the 20 mm tolerance plus one pixel).
    z_norm = batch["depth"][frames[vis], 0, row[vis], col[vis]]
    assert bool(((z_norm - batch["joints"][..., 2][vis]) * 125 > -20 - 5).all())


@pytest.mark.parametrize("domain", ["synthetic", "real-like"])
def test_determinism_alone_vs_batch_and_threads(domain):
    common = dict(seed=7, split="train", domain=domain, size=64)
    batch = render_frames(torch.arange(10), **common)
    alone = render_frames(torch.tensor([6]), **common)
    for key in batch:
        assert torch.equal(batch[key][6:7], alone[key]), key
    # render_frames pins one thread; the unpinned path must not depend on the thread count either.
    from handlib.synth import frames
    keys = frame_keys(7, ("train", domain), torch.arange(10))
    params = sample_frames(keys, domain)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = frames._render_params(params, keys, domain, 64, 250.0, None)
        torch.set_num_threads(2)
        two = frames._render_params(params, keys, domain, 64, 250.0, None)
    finally:
        torch.set_num_threads(threads)
    for key in one:
        assert torch.equal(one[key], two[key]), key


def test_sequences_are_smooth():
    clips = render_clips(torch.arange(6), frames=32, seed=0, split="train", domain="synthetic", size=32)
    joints = clips["points"][:, :, :21]
    step = (joints[:, 1:] - joints[:, :-1]).norm(dim=-1)
    assert float(step.max()) < 40.0 and float(step.mean()) < 10.0
    # A clip's frames are not all identical: the hand moves.
    assert float(step.mean()) > 0.2


def test_clips_have_occasional_fast_moves():
    from handlib.synth.poses import FAST_MOVES

    assert 0 < FAST_MOVES < 0.5
    speed = {}
    for fast in (0.0, FAST_MOVES):
        clips = render_clips(torch.arange(48), frames=48, seed=0, split="speed", domain="synthetic", size=32,
                             fast_moves=fast)
        joints = clips["points"][:, :, :21]
        speed[fast] = (joints[:, 1:] - joints[:, :-1]).norm(dim=-1).mean(-1)      # mm per frame
    # Most frames move alike; the fast intervals add a tail several times faster than slow motion ever is.
    assert abs(float(speed[0.0].median() - speed[FAST_MOVES].median())) < 1.0
    assert float(speed[FAST_MOVES].quantile(0.99)) > 2 * float(speed[0.0].quantile(0.99))
    assert float(speed[FAST_MOVES].max()) < 40.0                                   # still no jumps
    with pytest.raises(ValueError, match="fast_moves"):
        sample_sequences(frame_keys(0, ("x",), torch.arange(2)), 8, "synthetic", fast_moves=1.5)


def test_clips_with_a_detector_like_centre():
    clean = SyntheticClips("centre", 4, frames=8, size=32, progress=False)
    moved = SyntheticClips("centre", 4, frames=8, size=32, progress=False, detector_centre=True)
    a, b = clean[1], moved[1]
    assert torch.equal(a["joints_xyz"], b["joints_xyz"])               # the same hands ...
    offset = (b["com"] - a["com"]).norm(dim=-1)                          # ... cropped around another centre
    assert bool((offset > 0).all()) and 2.0 < float(offset.mean()) < 25.0   # N(0, 6 mm) per axis: ~10 mm
    assert torch.allclose(a["com"], a["joints_xyz"].mean(1), atol=30.0)


def test_frames_of_clips_follow_the_clips_frame_by_frame():
    from handlib.datasets import FramesOfClips

    clips = SyntheticClips("train", 3, frames=4, size=32, progress=False)
    frames = FramesOfClips(clips)
    assert len(frames) == 12
    item = frames[6]                                           # clip 1, frame 2
    assert int(item["clip"]) == 1 and int(item["step"]) == 2 and int(item["index"]) == 6
    assert torch.equal(item["depth"], clips[1]["depth"][2]) and torch.equal(item["joints"], clips[1]["joints"][2])
    assert item["depth"].shape == (1, 32, 32)


def test_clip_dataset_shapes():
    ds = SyntheticClips("train", 3, frames=5, size=32, progress=False)
    item = ds[2]
    assert item["depth"].shape == (5, 1, 32, 32) and item["joints"].shape == (5, 14, 3)
    assert item["frame"].tolist() == [0, 1, 2, 3, 4] and int(item["index"]) == 2


def test_real_like_domain_differs_and_flags_parts():
    ds = SyntheticHands("test", 8, size=64, domain="real-like", progress=False)
    s = ds[0]
    assert not bool(s["parts_trainable"])
    out = render_frames(torch.arange(32), seed=0, split="x", domain="real-like", size=96)
    hand = out["parts"] > 0
    missing = hand & (out["depth_mm"] == 0)
    assert 0.02 < float(missing.sum()) / float(hand.sum()) < 0.6


def test_cache_reuse_and_invalidation(tmp_path, monkeypatch):
    import handlib.synth.dataset as dsmod
    root = tmp_path / "c"
    first = SyntheticHands("train", 20, size=32, cache_dir=root, progress=False)
    files = sorted((root / "synth").glob("*.npz"))
    assert len(files) == 1 and files[0].with_suffix(".json").exists()

    def no_render(*args, **kwargs):
        raise AssertionError("cache should have been reused")

    monkeypatch.setattr(dsmod, "_render_shard", no_render)
    again = SyntheticHands("train", 20, size=32, cache_dir=root, progress=False)
    assert torch.equal(first[4]["depth"], again[4]["depth"])
    # A changed setting (cube) must not reuse the cache...
    with pytest.raises(AssertionError, match="reused"):
        SyntheticHands("train", 20, size=32, cube=200.0, cache_dir=root, progress=False)
    # ...nor may a corrupted file.
    monkeypatch.undo()
    monkeypatch.setenv("HANDLIB_CACHE_DIR", str(tmp_path / "unused"))
    data = bytearray(files[0].read_bytes())
    data[-10] ^= 0xFF
    files[0].write_bytes(bytes(data))
    rebuilt = SyntheticHands("train", 20, size=32, cache_dir=root, progress=False)
    assert torch.equal(first[4]["depth"], rebuilt[4]["depth"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=0), "crop size"), (dict(size=-4), "crop size"), (dict(n=0), "n must be"),
    (dict(domain="cartoon"), "unknown domain"), (dict(convention="mano"), "joint convention"),
    (dict(seed=-1), "seed"), (dict(cube=0.0), "cube"),
])
def test_invalid_arguments(kwargs, match):
    args = dict(split="train", n=4, size=32, progress=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SyntheticHands(**args)


def test_blob_hole_fraction():
    from handlib.synth.sensor import SensorModel, _blob_threshold
    field = SensorModel()._blob_field(torch.arange(200, 264), 96)
    frac = float((field > _blob_threshold(96, 0.01)).float().mean())
    assert 0.005 < frac < 0.02


def test_for_profile_uses_profile_sizes():
    from handlib.profiles import get_profile
    ds = SyntheticHands.for_profile("smoke", "val", progress=False)
    assert len(ds) == get_profile("smoke").val_frames and ds.size == get_profile("smoke").image_size


def test_per_frame_cube_range():
    ds = SyntheticHands("train", 40, size=32, cube=(250, 300), progress=False)
    cubes = ds.batch(range(40))["cube"][:, 0]
    assert set(cubes.unique().tolist()) <= {250.0, 260.0, 270.0, 280.0, 290.0, 300.0}
    assert len(cubes.unique()) > 2
    fixed = SyntheticHands("train", 40, size=32, progress=False)
    # The cube draw uses its own sub-stream: the poses are the same frames.
    assert torch.equal(ds.theta, fixed.theta)
    with pytest.raises(ValueError, match="cube range"):
        SyntheticHands("train", 4, size=32, cube=(300, 250), progress=False)


def test_parallel_build_equals_in_process(tmp_path):
    serial = SyntheticHands("train", 300, size=32, cache_dir=tmp_path / "a", workers=1, progress=False)
    parallel = SyntheticHands("train", 300, size=32, cache_dir=tmp_path / "b", workers=2, progress=False)
    a, b = serial.batch(range(300)), parallel.batch(range(300))
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_sensor_model_rejects_bad_knobs():
    from handlib.synth.sensor import SensorModel
    with pytest.raises(ValueError, match="background_probability"):
        SensorModel(background_probability=1.5)
    with pytest.raises(ValueError, match="baseline_mm"):
        SensorModel(baseline_mm=0)


def test_blob_hole_threshold_calibrates_at_full_frame_size():
    """Full-frame renders (e.g. NYU's 640 px) must not exceed torch.quantile's input limit."""
    from handlib.synth.sensor import _blob_threshold

    level = _blob_threshold(640, 0.01)
    assert 0.0 < level < 1.0
