"""Clips (N, T, J) are N*T frames to every metric and to the loop: never a max or mean over time."""
import torch
from torch import nn

from handlib import metrics
from handlib.models.registry import Selection
from handlib.recipe import Recipe
from handlib.train import TrainOptions, evaluate, fit, predict_xyz

from test_train import NUM_JOINTS, TinyDataset, TinyNet, tiny_loss


def test_success_curve_of_clips_counts_frames_not_clips():
    # Two clips of two frames; one frame of the first clip is bad (50 mm), all others 5 mm.
    errors = torch.full((2, 2, 3), 5.0)
    errors[0, 1, 2] = 50.0
    curve = metrics.success_curve(errors, thresholds=[10.0], variant="max-frame")
    assert curve.tolist() == [0.75]                     # 3 of 4 frames; a max over time would give 0.5
    assert torch.equal(metrics.per_joint_error(errors), metrics.per_joint_error(errors.reshape(4, 3)))
    assert metrics.mean_error(errors) == metrics.mean_error(errors.reshape(4, 3))


class ClipDataset(torch.utils.data.Dataset):
    """TinyDataset's frames grouped into clips of T consecutive frames (fields stacked on time)."""

    def __init__(self, frames: TinyDataset, T: int):
        self.frames, self.T = frames, T

    def __len__(self):
        return len(self.frames) // self.T

    def __getitem__(self, i):
        items = [self.frames[i * self.T + t] for t in range(self.T)]
        return {k: torch.stack([item[k] for item in items]) for k in items[0]}


class PerFrame(nn.Module):
    """(B, T, 1, S, S) -> (B, T, J, 3) with one frame network."""

    def __init__(self):
        super().__init__()
        self.frame = TinyNet(regularised=False)

    def forward(self, depth):
        b, t = depth.shape[:2]
        return self.frame(depth.flatten(0, 1)).reshape(b, t, NUM_JOINTS, 3)


def test_loop_trains_and_evaluates_clips_as_frames():
    train, val = ClipDataset(TinyDataset(64), 4), ClipDataset(TinyDataset(16, seed=1), 4)
    torch.manual_seed(0)
    net = PerFrame()
    result = fit(net, tiny_loss, lambda out: out, train, val, Recipe(lr=1e-2, epochs=1, batch_size=4),
                 TrainOptions(device="cpu", progress=False))
    pred, truth = predict_xyz(net, lambda out: out, val, batch_size=2)
    assert pred.shape == truth.shape == (16, NUM_JOINTS, 3)         # 4 clips x 4 frames
    frame_mean = metrics.mean_error(metrics.joint_errors(pred, truth))
    assert abs(evaluate(net, lambda out: out, val)["mean_error_mm"] - frame_mean) < 1e-9
    assert abs(result.final_val["mean_error_mm"] - frame_mean) < 1e-9


def test_selection_metric_can_be_higher_is_better():
    """A spec's selection picks the epoch with the best value of its own metric."""
    values = iter([0.2, 0.9, 0.5])

    def accuracy(model, predict, dataset, **kwargs):
        return {"accuracy": next(values)}

    torch.manual_seed(0)
    result = fit(TinyNet(), tiny_loss, lambda out: out, TinyDataset(32), TinyDataset(8, seed=1),
                 Recipe(lr=1e-2, epochs=3, batch_size=8), TrainOptions(device="cpu", progress=False),
                 selection=Selection("accuracy", lower_is_better=False, evaluate=accuracy))
    assert result.best == {"epoch": 2, "accuracy": 0.9}
