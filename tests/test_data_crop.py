"""Crop, normalisation and augmentation: round trips and image/label consistency."""
import math

import pytest
import torch

from handlib.data.augment import AugmentConfig, augment_batch
from handlib.data.crop import (BACKGROUND_THRESHOLD, center_of_mass, crop_batch, crop_depth, depth_to_mm,
                               foreground_mask, is_background, refine_com, uncrop_joints)
from handlib.geometry import denormalize_joints, get_camera, normalize_depth, uvd_to_xyz

CAM = get_camera("nyu")


def disk_hand(joints_uvd, h=480, w=640, radius=7.0):
    """(B, J, 3) joints -> (B, H, W) depth: a disk of each joint's depth around it (nearest wins)."""
    rows = torch.arange(h, dtype=torch.float64).view(1, h, 1, 1)
    cols = torch.arange(w, dtype=torch.float64).view(1, 1, w, 1)
    u = joints_uvd[:, None, None, :, 0]
    v = joints_uvd[:, None, None, :, 1]
    d = joints_uvd[:, None, None, :, 2]
    inside = (cols - u) ** 2 + (rows - v) ** 2 <= radius ** 2
    depth = torch.where(inside, d, torch.full_like(d, math.inf)).min(dim=-1).values
    return torch.where(torch.isinf(depth), torch.zeros_like(depth), depth)


def make_frames(b=4, j=14, seed=0):
    g = torch.Generator().manual_seed(seed)
    center = torch.tensor([320.0, 240.0, 600.0]) + torch.randn(b, 1, 3, generator=g, dtype=torch.float64) * torch.tensor([60.0, 40.0, 80.0])
    offsets = torch.randn(b, j, 3, generator=g, dtype=torch.float64) * torch.tensor([25.0, 25.0, 15.0])
    joints = center + offsets
    return disk_hand(joints), joints


def test_center_of_mass_hand_computed():
    depth = torch.zeros(1, 4, 5)
    depth[0, 1, 2] = 100
    depth[0, 3, 4] = 300
    depth[0, 0, 0] = 5          # below the 10 mm minimum: ignored
    com, count = center_of_mass(depth)
    assert count.tolist() == [2]
    assert com[0].tolist() == [3.0, 2.0, 200.0]


def test_crop_shapes_clamp_and_roundtrip():
    depth, joints = make_frames()
    com = joints.mean(dim=1)
    cube = torch.full((4, 3), 250.0, dtype=torch.float64)
    crop, m = crop_depth(depth, com, cube, CAM, 96)
    assert crop.shape == (4, 96, 96) and m.shape == (4, 3, 3)
    nonzero = crop[crop > 0]
    z = com[:, 2].view(4, 1, 1)
    assert ((crop == 0) | ((crop >= z - 125) & (crop <= z + 125))).all()
    assert nonzero.numel() > 0
    sample = crop_batch(depth, joints, com, cube, CAM, 96)
    assert sample["depth"].shape == (4, 1, 96, 96)
    assert sample["depth"].min() >= -1 and sample["depth"].max() <= 1
    # crop -> uncrop and normalise -> denormalise are exact inverses.
    back = uncrop_joints(sample["joints_crop"].double(), m, com[:, 2], cube[:, 2])
    assert torch.allclose(back, joints, atol=1e-3)
    xyz = denormalize_joints(sample["joints"].double(), sample["com"].double(), cube)
    assert torch.allclose(xyz, uvd_to_xyz(joints, CAM), atol=1e-3)
    # Depth de-normalisation returns the clamped crop (float32 rounding aside).
    assert torch.allclose(depth_to_mm(sample["depth"][:, 0], com[:, 2], cube[:, 2]), crop, atol=1e-2)


def test_joint_pixels_land_on_the_hand_in_the_crop():
    depth, joints = make_frames(seed=1)
    com = joints.mean(dim=1)
    cube = torch.full((4, 3), 300.0, dtype=torch.float64)
    sample = crop_batch(depth, joints, com, cube, CAM, 128)
    assert on_hand_fraction(sample) == 1.0


def test_refine_com_moves_to_the_blob():
    depth, joints = make_frames(b=2, seed=2)
    true_com, _ = center_of_mass(depth)
    start = joints[:, 0]                     # start at one joint, as MSRA's docom does
    refined = refine_com(depth, start, torch.full((2, 3), 400.0), CAM, iterations=3)
    assert torch.allclose(refined[:, :2], true_com[:, :2], atol=3.0)
    empty = refine_com(torch.zeros(1, 480, 640), torch.tensor([[10.0, 10.0, 0.0]]), torch.full((1, 3), 200.0), CAM)
    assert empty[0].tolist() == [10.0, 10.0, 300.0]


def on_hand_fraction(sample):
    """Fraction of joints whose crop pixel is foreground (depth < +1) within one pixel."""
    d = sample["depth"][:, 0]
    b, s, _ = d.shape
    uv = sample["joints_crop"][..., :2].round().long()
    hits = []
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            u = (uv[..., 0] + du).clamp(0, s - 1)
            v = (uv[..., 1] + dv).clamp(0, s - 1)
            hits.append(d[torch.arange(b).view(b, 1), v, u] < 1)
    inside = (uv >= 0).all(-1) & (uv < s).all(-1)
    return float((torch.stack(hits).any(0) | ~inside).double().mean())


@pytest.mark.parametrize("mode", ["rot", "com", "sc", "none"])
@pytest.mark.parametrize("ranges", ["code", "paper"])
def test_augmentation_keeps_labels_on_the_hand(mode, ranges):
    depth, joints = make_frames(seed=3)
    com = joints.mean(dim=1)
    cube = torch.full((4, 3), 300.0, dtype=torch.float64)
    sample = crop_batch(depth, joints, com, cube, CAM, 96)
    sample["parts"] = torch.where(sample["depth"][:, 0] < 1, 1, -1)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(sample, CAM, AugmentConfig(modes=(mode,), ranges=ranges), generator=g)
    assert out["depth"].shape == sample["depth"].shape
    assert out["depth"].min() >= -1 and out["depth"].max() <= 1
    assert on_hand_fraction(out) == 1.0
    # Labels stay self-consistent: normalised joints de-normalise to joints_xyz.
    xyz = denormalize_joints(out["joints"].double(), out["com"].double(), out["cube"].double())
    assert torch.allclose(xyz, out["joints_xyz"].double(), atol=1e-2)
    assert ((out["parts"] == 1) == (out["depth"][:, 0] < 1)).all()
    if mode == "none":
        assert torch.equal(out["depth"], sample["depth"])
        assert torch.allclose(out["joints"], sample["joints"], atol=1e-5)
    if mode == "rot":
        # Rotation keeps distances to the centre in the crop plane.
        c = 48.0
        r_in = (sample["joints_crop"][..., :2] - c).norm(dim=-1)
        r_out = (out["joints_crop"][..., :2] - c).norm(dim=-1)
        assert torch.allclose(r_in, r_out, atol=1e-3)


def test_bad_augment_config():
    with pytest.raises(ValueError, match="modes"):
        AugmentConfig(modes=("flip",))
    with pytest.raises(ValueError, match="ranges"):
        AugmentConfig(ranges="both")


def hand_and_forearm(h=240, w=320):
    """(1, H, W) mm: a hand-sized disk (radius 25 px at 400 mm, about 80 mm across) and a forearm
    slab attached to its right (100 x 30 px, receding from 405 to 450 mm) with more pixels than the
    hand; both fit in a 250 mm cube's box (about 150 px at this depth). -> (depth, hand centre uv)."""
    rows = torch.arange(h, dtype=torch.float64).view(h, 1)
    cols = torch.arange(w, dtype=torch.float64).view(1, w)
    hand_uv = torch.tensor([120.0, 100.0], dtype=torch.float64)
    hand = (cols - hand_uv[0]) ** 2 + (rows - hand_uv[1]) ** 2 <= 25.0 ** 2
    arm = (cols >= 135) & (cols < 235) & (rows >= 85) & (rows < 115) & ~hand
    arm_depth = 405.0 + (cols - 135.0) * 45.0 / 100.0
    depth = torch.where(hand, torch.full_like(arm_depth, 400.0), torch.where(arm, arm_depth, 0.0))
    return depth.unsqueeze(0), hand_uv


def test_refine_com_with_a_hand_sized_window_stays_on_the_hand():
    cam = get_camera("icvl")
    depth, hand_uv = hand_and_forearm()
    _, count = center_of_mass(depth)
    assert count[0] > 2 * (depth[0] == 400.0).sum()    # the arm outweighs the hand
    cube = torch.full((1, 3), 250.0, dtype=torch.float64)
    start = torch.tensor([[130.0, 100.0, 400.0]], dtype=torch.float64)   # on the hand, towards the wrist
    off = lambda com: float((com[0, :2] - hand_uv).norm())
    # DeepPrior's / CrossInfoNet's docom (the CoM window is the 250 mm crop cube, which holds hand and
    # arm): every step moves towards the arm's mass, off the hand.
    docom = refine_com(depth, start, cube, cam, iterations=5)
    assert off(docom) > 25 and off(docom) > off(start) + 15
    # A hand-sized window (half the cube, 125 mm) keeps the centre on the hand, at the hand's depth.
    refined = refine_com(depth, start, cube, cam, iterations=5, window_scale=0.5)
    assert off(refined) <= off(start) and off(refined) < off(docom) - 20
    assert abs(float(refined[0, 2]) - 400.0) < 5
    # window_scale=1 is the papers' step, exactly.
    assert torch.equal(refine_com(depth, start, cube, cam, 5, window_scale=1.0), docom)


def test_float32_background_just_below_one_is_background():
    # A float32 crop's background is (z + C/2 - z) / (C/2): at z = 450.1 mm, C = 250 mm it rounds to
    # 0.99999976, which the old test (>= 1) took for a hand pixel at the cube's far face.
    com_z, cube_z = torch.tensor([450.1]), torch.tensor([250.0])
    crop_mm = torch.zeros(1, 2, 2)
    crop_mm[0, 0, 0] = 430.0                                    # one hand pixel
    norm = normalize_depth(crop_mm, com_z, cube_z)
    background = norm[0, 1, 1]
    assert background.dtype == torch.float32 and background < 1      # the rounding this test is about
    assert not bool(background >= 1)                                  # the old test misses it
    assert is_background(norm).tolist() == [[[False, True], [True, True]]]
    assert foreground_mask(norm).tolist() == [[[True, False], [False, False]]]
    mm = depth_to_mm(norm, com_z, cube_z, threshold=BACKGROUND_THRESHOLD)
    assert mm[0, 1, 1] == 0 and abs(float(mm[0, 0, 0]) - 430.0) < 1e-3
    # A hand pixel 1 mm before the far face is still foreground.
    near_face = normalize_depth(torch.full((1, 1, 1), 450.1 + 124.0), com_z, cube_z)
    assert foreground_mask(near_face).all()


def test_depth_to_mm_default_keeps_the_trained_background_test():
    # The committed training runs re-crop with depth_to_mm's default (only an exact +1 is background);
    # the default must not change, or their inputs would.
    norm = torch.tensor([[[0.5, 0.99999976, 1.0]]])
    mm = depth_to_mm(norm, torch.tensor([400.0]), torch.tensor([250.0]))
    assert mm[0, 0, 2] == 0 and mm[0, 0, 1] > 0
