import pytest
import torch

from handlib import geometry
from handlib.joints import CONVENTIONS, get_convention


@pytest.mark.parametrize("name", ["nyu", "icvl", "msra", "hands17"])
def test_uvd_xyz_round_trip(name):
    cam = geometry.get_camera(name)
    uvd = torch.tensor([[[100.0, 80.0, 400.0], [200.5, 150.25, 812.0]]], dtype=torch.float64)
    back = geometry.xyz_to_uvd(geometry.uvd_to_xyz(uvd, cam), cam)
    assert torch.allclose(back, uvd, atol=1e-9)


def test_nyu_evaluation_camera_points_y_up():
    cam = geometry.get_camera("nyu", evaluation=True)
    above_centre = geometry.uvd_to_xyz(torch.tensor([320.0, 100.0, 500.0]), cam)
    assert above_centre[1] > 0  # row above the principal point -> positive y (fy < 0)


def test_normalize_joints_inverse_is_exact():
    gen = torch.Generator().manual_seed(0)
    joints = torch.randn(4, 14, 3, generator=gen, dtype=torch.float64) * 60 + 500
    com = joints.mean(1)
    cube = torch.full((4, 3), 250.0, dtype=torch.float64)
    norm = geometry.normalize_joints(joints, com, cube)
    assert (geometry.denormalize_joints(norm, com, cube) - joints).abs().max() < 1e-4


def test_crop_transform_maps_box_onto_canvas():
    cam = geometry.get_camera("nyu")
    com_uvd = torch.tensor([[320.0, 240.0, 600.0]])
    cube = torch.tensor([[250.0, 250.0, 250.0]])
    box = geometry.com_to_box(com_uvd, cube, cam)
    m = geometry.crop_transform(box, 96)
    corners = torch.tensor([[[box[0, 0], box[0, 2], 0.0], [box[0, 1], box[0, 3], 0.0]]])
    mapped = geometry.transform_points_2d(corners, m)[0, :, :2]
    assert torch.allclose(mapped[0], torch.tensor([0.0, 0.0]), atol=1e-4)
    assert mapped[1].max() <= 96 + 1e-4 and mapped[1].max() >= 95


def test_normalize_depth_background_is_plus_one():
    depth = torch.tensor([[[0.0, 450.0], [600.0, 900.0]]])
    out = geometry.normalize_depth(depth, torch.tensor([600.0]), torch.tensor([250.0]))
    assert out[0, 0, 0] == 1 and out[0, 0, 1] == -1 and out[0, 1, 0] == 0 and out[0, 1, 1] == 1


def test_conventions_are_consistent():
    for conv in CONVENTIONS.values():
        assert len(conv.from_canonical) == conv.num_joints
        assert sorted(conv.palm + conv.finger) == list(range(conv.num_joints))
    assert (get_convention("nyu").num_joints, len(get_convention("nyu").palm)) == (14, 9)
    assert (get_convention("msra").num_joints, len(get_convention("msra").palm)) == (21, 6)
    with pytest.raises(ValueError, match="hands17"):
        get_convention("mano")
