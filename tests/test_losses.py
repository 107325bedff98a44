"""Heat-map targets and the CrossInfoNet loss against hand-computed values."""
import pytest
import torch

from handlib.losses import crossinfonet_heatmap_targets, crossinfonet_loss, half_sse_per_sample


def test_heatmap_target_peaks_at_joint_crop_position():
    # u = 50.3, v = 20.9 in a 96 crop -> column floor(50.3/4) = 12, row floor(20.9/4) = 5.
    joints_crop = torch.tensor([[[50.3, 20.9, 0.1], [3.0, 90.0, 0.0]]])
    maps = crossinfonet_heatmap_targets(joints_crop, image_size=96, heatmap_size=24)
    assert maps.shape == (1, 2, 24, 24)
    first = maps[0, 0]
    row, col = divmod(int(first.argmax()), 24)
    assert (row, col) == (5, 12)
    # The code's stamp: 1 at the joint, 1/2 at the 4-neighbours, 1/4 at the diagonals, 0 else.
    expected = torch.tensor([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    torch.testing.assert_close(first[4:7, 11:14], expected)
    assert first.sum().item() == pytest.approx(4.0)
    assert divmod(int(maps[0, 1].argmax()), 24) == (22, 0)


def test_heatmap_target_clamps_and_zeroes_like_the_code():
    joints_crop = torch.tensor([[[120.0, 96.0], [-1.0, 10.0], [10.0, -0.5]]])
    maps = crossinfonet_heatmap_targets(joints_crop)
    corner = maps[0, 0]
    # Clamped to pixel 95 -> cell 23; reflect-101 blur then peak normalisation keeps the stamp.
    assert corner[23, 23] == 1.0 and corner[22, 23] == 0.5 and corner[22, 22] == 0.25
    assert int((corner > 0).sum()) == 4
    assert maps[0, 1].abs().sum() == 0 and maps[0, 2].abs().sum() == 0


def test_heatmap_target_next_to_the_border_reflects_like_opencv():
    # Reflect-101 mirrors the joint's cell across the border row, so the blurred border row
    # equals the peak (cv2.GaussianBlur's default border; the released targets have it too).
    maps = crossinfonet_heatmap_targets(torch.tensor([[[4.0, 50.0]]]))   # column 1, row 12
    row = maps[0, 0, 12]
    torch.testing.assert_close(row[:4], torch.tensor([1.0, 1.0, 0.5, 0.0]))


def test_heatmap_target_rejects_bad_shape():
    with pytest.raises(ValueError, match="joints_crop"):
        crossinfonet_heatmap_targets(torch.zeros(3, 2))


def _tiny_outputs_and_batch():
    """B = 2, J = 3 (palm = joints 0 and 2, finger = joint 1), 32-pixel crop, 8x8 heat maps,
    every joint at least one cell away from the border."""
    batch = {
        "joints": torch.ones(2, 3, 3),
        "joints_crop": torch.tensor([[[9.0, 9.0, 0], [17.0, 13.0, 0], [13.0, 21.0, 0]]] * 2),
        "depth": torch.zeros(2, 1, 32, 32),
    }
    outputs = {
        "hand": torch.zeros(2, 3, 3), "palm": torch.zeros(2, 2, 3), "finger": torch.zeros(2, 1, 3),
        "palm_joints": torch.tensor([0, 2]), "finger_joints": torch.tensor([1]),
        "heatmap": torch.zeros(2, 3, 8, 8), "palm_heatmap": torch.zeros(2, 2, 8, 8),
        "finger_heatmap": torch.zeros(2, 1, 8, 8),
    }
    return outputs, batch


def test_loss_equals_hand_computed_value():
    outputs, batch = _tiny_outputs_and_batch()
    terms = crossinfonet_loss(outputs, batch)
    # Coordinates: 1/2 * (number of unit errors) / B.
    assert terms["L_a"].item() == pytest.approx(0.5 * 18 / 2)      # 4.5
    assert terms["L_ep"].item() == pytest.approx(0.5 * 12 / 2)     # 3.0
    assert terms["L_ef"].item() == pytest.approx(0.5 * 6 / 2)      # 1.5
    # Each interior stamp has squared sum 1 + 4/4 + 4/16 = 2.25.
    assert terms["L_ht"].item() == pytest.approx(0.5 * 2 * 3 * 2.25 / 2)   # 3.375
    assert terms["L_bp"].item() == pytest.approx(0.5 * 2 * 2 * 2.25 / 2)   # 2.25
    assert terms["L_bf"].item() == pytest.approx(0.5 * 2 * 1 * 2.25 / 2)   # 1.125
    # total = 1/2 * [0.01 * (3.375 + 2.25 + 1.125) + (4.5 + 3 + 1.5)]
    assert terms["total"].item() == pytest.approx(4.53375)


def test_loss_without_heatmaps_has_only_coordinate_terms():
    outputs, batch = _tiny_outputs_and_batch()
    for key in ("heatmap", "palm_heatmap", "finger_heatmap"):
        del outputs[key]
    terms = crossinfonet_loss(outputs, batch)
    assert set(terms) == {"L_a", "L_ep", "L_ef", "total"}
    assert terms["total"].item() == pytest.approx(4.5)


def test_loss_names_missing_batch_key_and_shape_mismatch():
    outputs, batch = _tiny_outputs_and_batch()
    del batch["joints_crop"]
    with pytest.raises(ValueError, match="joints_crop"):
        crossinfonet_loss(outputs, batch)
    with pytest.raises(ValueError, match="does not match"):
        half_sse_per_sample(torch.zeros(2, 3), torch.zeros(2, 4))


def test_palm_and_finger_terms_use_their_own_joints():
    """Distinct targets per joint: branch outputs equal to the right joints give zero, so any other
    slice (wrong partition, wrong order) would not."""
    outputs, batch = _tiny_outputs_and_batch()
    batch["joints"] = torch.arange(18, dtype=torch.float32).reshape(2, 3, 3)      # every value distinct
    outputs["hand"] = batch["joints"].clone()
    outputs["palm"] = batch["joints"][:, [0, 2]].clone()        # palm_joints = (0, 2), in that order
    outputs["finger"] = batch["joints"][:, [1]].clone()
    targets = crossinfonet_heatmap_targets(batch["joints_crop"], image_size=32, heatmap_size=8)
    assert not torch.equal(targets[:, 0], targets[:, 2])       # the three maps differ too
    outputs["heatmap"], outputs["palm_heatmap"] = targets.clone(), targets[:, [0, 2]].clone()
    outputs["finger_heatmap"] = targets[:, [1]].clone()
    terms = crossinfonet_loss(outputs, batch)
    assert all(terms[k].item() == 0 for k in ("L_a", "L_ep", "L_ef", "L_ht", "L_bp", "L_bf", "total"))
    # The palm branch's joints in the other order: every coordinate of both joints is off by 6.
    outputs["palm"] = batch["joints"][:, [2, 0]].clone()
    assert crossinfonet_loss(outputs, batch)["L_ep"].item() == pytest.approx(0.5 * 6 * 36 * 2 / 2)
