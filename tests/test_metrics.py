"""Metrics against hand-computed values and against a line-by-line transcript of the AWESOME script."""
import math

import numpy as np
import pytest
import torch

from handlib.metrics import (evaluate_uvd, joint_errors, mean_error, per_joint_error, success_curve,
                             subset_errors, uvd_to_xyz_eval)


def test_hand_computed_errors():
    gt = torch.zeros(2, 2, 3)
    pred = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]],
                         [[0.0, 0.0, 12.0], [6.0, 8.0, 0.0]]])
    e = joint_errors(pred, gt)
    assert e.tolist() == [[5.0, 1.0], [12.0, 10.0]]
    assert per_joint_error(e).tolist() == [8.5, 5.5]
    assert mean_error(e) == 7.0
    assert success_curve(e, [0, 5, 10, 12], "max-frame").tolist() == [0.0, 0.5, 0.5, 1.0]
    assert success_curve(e, [3, 11], "mean-frame").tolist() == [0.5, 1.0]   # frame means 3 and 11
    assert success_curve(e, [5, 10], "joint").tolist() == [0.5, 0.75]       # inclusive <=
    assert subset_errors(e, {"first": slice(0, 1)}) == {"first": 3.0}
    with pytest.raises(ValueError, match="variant"):
        success_curve(e, [1], "median")


def test_nyu_negative_fy():
    # A point 10 px above the principal point at 500 mm: y up with AWESOME's fy = -587.07.
    xyz = uvd_to_xyz_eval(torch.tensor([[[320.0, 230.0, 500.0]]]), "nyu")
    assert xyz[0, 0, 1] == pytest.approx(10 * 500 / 587.07)
    assert xyz[0, 0, 0] == 0.0


def awesome_reference(pred_uvd, gt_uvd, fx, fy, cx, cy):
    """Plain-numpy transcript of AWESOME compute_error.py / util.py (pixel2world, per-joint mean)."""
    def pixel2world(x):
        x = x.copy()
        x[:, :, 0] = (x[:, :, 0] - cx) * x[:, :, 2] / fx
        x[:, :, 1] = (x[:, :, 1] - cy) * x[:, :, 2] / fy
        return x
    err = np.sqrt(np.sum((pixel2world(pred_uvd) - pixel2world(gt_uvd)) ** 2, axis=2))
    per_joint = [np.mean(err[:, j]) for j in range(err.shape[1])]
    max_err = np.max(err, axis=1)
    success = [np.sum(max_err <= t) / float(err.shape[0]) for t in range(0, 85)]
    return np.mean(per_joint), per_joint, success


def test_matches_reference_protocol_random():
    rng = np.random.default_rng(0)
    gt = np.stack([rng.uniform(100, 500, (50, 14)), rng.uniform(100, 400, (50, 14)),
                   rng.uniform(500, 900, (50, 14))], -1)
    pred = gt + rng.normal(0, 5, gt.shape)
    ref_mean, ref_joint, ref_success = awesome_reference(pred, gt, 588.03, -587.07, 320, 240)
    ours = evaluate_uvd(pred, gt, "nyu", thresholds=range(0, 85))
    assert abs(ours["mean_mm"] - ref_mean) < 1e-9
    assert np.allclose(ours["per_joint_mm"], ref_joint, atol=1e-9)
    assert [ours["success_max_frame"][str(t)] for t in range(85)] == pytest.approx(ref_success)
    assert math.isclose(ours["mean_mm"], float(np.mean(np.linalg.norm(
        uvd_to_xyz_eval(pred, "nyu").numpy() - uvd_to_xyz_eval(gt, "nyu").numpy(), axis=-1))))
