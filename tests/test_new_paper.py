"""A new paper needs one model file, one notebook and one _toc.yml line: a small model registered
here (not in handlib) goes through ``train``, ``summary``, ``bench infer`` and an experiment grid on
the real synthetic pipeline, with nothing else added to the library."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from handlib import experiments, profiles, results
from handlib.cli import main
from handlib.models import registry
from handlib.models.registry import ModelSpec
from handlib.recipe import Recipe

J = 14   # NYU-14, the synthetic default


class ToyNet(nn.Module):
    """(B, 1, S, S) -> (B, J, 3) for any crop size S."""

    def __init__(self, width: int):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.joints = nn.Linear(4 * width, J * 3)

    def forward(self, depth):
        return self.joints(self.features(depth)).reshape(-1, J, 3)


def toy_loss(outputs, batch):
    return {"total": ((outputs - batch["joints"]) ** 2).mean()}


TOY = ModelSpec(
    name="toy-paper", paper="A. Toy. A tiny network. Tests 2026", chapter="toy",
    variants={"narrow": "Narrow", "wide": "Wide"}, default_variant="wide",
    build=lambda variant, convention, image_size: ToyNet(4 if variant == "narrow" else 8),
    loss=toy_loss, predict=lambda outputs: outputs,
    recipe=Recipe(optimizer="adam", lr=1e-2, epochs=20, batch_size=64))


@pytest.fixture(autouse=True)
def toy_paper(monkeypatch, tmp_path):
    monkeypatch.setitem(registry._REGISTRY, TOY.name, TOY)
    monkeypatch.setitem(profiles.CHAPTER_OVERRIDES, "toy", {"smoke": {
        "train_frames": 32, "val_frames": 8, "test_frames": 12, "epochs": 1, "batch_size": 8,
        "image_size": 32, "seeds": (0, 1)}})
    monkeypatch.setenv("HANDLIB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.chdir(tmp_path)


def cli_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_command_writes_record_and_predictions(capsys, tmp_path):
    assert main(["train", "toy-paper", "--profile", "smoke", "--variant", "narrow", "--device", "cpu"]) == 0
    (record,) = results.load_records(profile="smoke", model="toy-paper")
    assert record["variant"] == "narrow" and record["test"]["frames"] == 12
    assert record["config"]["sizes"]["image_size"] == 32 and len(record["config_hash"]) == 16
    seen = [point["samples_seen"] for point in record["curve"]]    # the learning curve: 4 steps of 8
    assert seen == [8, 16, 24, 32] and all("mean_error_mm" in point["val"] for point in record["curve"])
    pred, truth = results.load_predictions(record)
    assert pred.shape == truth.shape == (12, J, 3)
    # The stored predictions reproduce the record's test error to float16 precision of the offsets.
    from handlib.metrics import joint_errors, mean_error
    assert mean_error(joint_errors(pred, truth)) == pytest.approx(record["test"]["mean_error_mm"], abs=0.01)
    assert (tmp_path / "runs" / "toy-paper" / "narrow" / "synthetic" / "smoke" / "seed0" / "best.pt").is_file()


def test_summary_and_bench_infer_work_for_any_registered_model(capsys):
    summary = cli_json(capsys, "summary", "toy-paper", "--json", "--image-size", "32")
    expected_params = sum(p.numel() for p in ToyNet(8).parameters())
    assert summary["params"] == expected_params
    conv_flops = 2 * 8 * 9 * 32 * 32            # 3x3 conv, 1 -> 8 channels, 32x32 output, 2 FLOPs per MAC
    linear_flops = 2 * 32 * J * 3
    assert summary["flops"] == summary["flops_inference"] == conv_flops + linear_flops
    bench = cli_json(capsys, "bench", "infer", "toy-paper", "--json", "--repeats", "1", "--device", "cpu")
    for key in ("fps_b1", "fps_b64", "roofline_fraction_b1", "roofline_fraction_b64", "peak_flops_per_s",
                "flops_per_frame"):
        assert isinstance(bench[key], float | int) and bench[key] > 0, key
    assert bench["flops_per_frame"] == 2 * 8 * 9 * 96 * 96 + linear_flops   # bench times the 96x96 crop
    assert bench["roofline_fraction_b64"] < 1.5                      # a ratio of FLOP rates, not a time


def test_grid_trains_once_then_loads_and_retrains_when_the_config_changes(monkeypatch, tmp_path):
    runs = tmp_path / "runs"
    grid = experiments.run_grid("toy-paper", profile="smoke", progress=False, lanes=1, runs_root=runs)
    assert grid.variants == ("narrow", "wide") and grid.seeds == (0, 1)
    assert sorted(grid.trained) == [(v, s) for v in ("narrow", "wide") for s in (0, 1)]
    assert grid.labels == {"narrow": "Narrow", "wide": "Wide"}
    errors = grid.errors("wide", 1)
    assert errors.shape == (12, J)
    assert experiments.load_trained(grid, "wide", 1) is not None       # weights where the grid says

    again = experiments.run_grid("toy-paper", profile="smoke", progress=False, lanes=1, runs_root=runs)
    assert again.trained == [] and "4 loaded" in again.summary()
    assert torch.equal(again.errors("wide", 1), errors)
    assert again.records["narrow", 0]["config_hash"] == grid.records["narrow", 0]["config_hash"]

    # A longer budget is another configuration: its runs are trained, the old records are not reused.
    monkeypatch.setitem(profiles.CHAPTER_OVERRIDES["toy"]["smoke"], "epochs", 2)
    longer = experiments.run_grid("toy-paper", profile="smoke", variants=["wide"], seeds=[0], progress=False, lanes=1,
                                  runs_root=runs)
    assert longer.trained == [("wide", 0)] and longer.records["wide", 0]["epochs"] == 2

    # retrain=True trains from scratch: the finished run's checkpoint is replaced, not resumed.
    last = experiments.checkpoint_dir(longer, "wide", 0) / "last.pt"
    before = last.stat().st_mtime_ns
    forced = experiments.run_grid("toy-paper", profile="smoke", variants=["wide"], seeds=[0], retrain=True,
                                  progress=False, lanes=1, runs_root=runs)
    assert forced.trained == [("wide", 0)] and last.stat().st_mtime_ns != before


class Refiner(nn.Module):
    """Second stage: the first stage's joints plus a learnt correction from the crop."""

    def __init__(self):
        super().__init__()
        self.correction = ToyNet(4)

    def forward(self, depth, first_joints):
        return first_joints + self.correction(depth)


TWO_STAGE = ModelSpec(
    name="toy-refiner", paper="A. Toy. Two stages. Tests 2026", chapter="toy",
    variants={"refine": "Refine"}, default_variant="refine",
    build=lambda variant, convention, image_size: Refiner(),
    loss=toy_loss, predict=lambda outputs: outputs,
    recipe=Recipe(optimizer="adam", lr=1e-2, epochs=20, batch_size=64),
    forward=lambda net, batch: net(batch["depth"], batch["first_joints"]),
    upstream=registry.Upstream("toy-paper", "narrow",
                               attach=lambda first, batch: {**batch, "first_joints": first(batch["depth"])}))


def test_two_stage_model_trains_on_a_frozen_first_stage(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(registry._REGISTRY, TWO_STAGE.name, TWO_STAGE)
    assert main(["train", "toy-refiner", "--profile", "smoke", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "train it first" in err and "train toy-paper --variant narrow" in err
    assert main(["train", "toy-paper", "--profile", "smoke", "--variant", "narrow", "--device", "cpu"]) == 0
    first = tmp_path / "runs" / "toy-paper" / "narrow" / "synthetic" / "smoke" / "seed0" / "best.pt"
    before = torch.load(first, weights_only=False)["model"]
    assert main(["train", "toy-refiner", "--profile", "smoke", "--device", "cpu"]) == 0
    out = tmp_path / "runs" / "toy-refiner" / "refine__after-toy-paper-narrow" / "synthetic" / "smoke" / "seed0"
    assert (out / "best.pt").is_file()
    (record,) = results.load_records(profile="smoke", model="toy-refiner")
    assert record["stage"] == "toy-paper-narrow" and record["config"]["stage"] == "toy-paper-narrow"
    assert "after-toy-paper-narrow" in results.record_filename(record)
    after = torch.load(first, weights_only=False)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)       # the first stage stayed frozen


def test_two_stage_grid_finds_its_first_stage_in_the_grid(monkeypatch, tmp_path):
    monkeypatch.setitem(registry._REGISTRY, TWO_STAGE.name, TWO_STAGE)
    runs = tmp_path / "grid-runs"
    experiments.run_grid("toy-paper", profile="smoke", variants=["narrow"], seeds=[0], progress=False, lanes=1,
                         runs_root=runs)
    second = experiments.run_grid("toy-refiner", profile="smoke", seeds=[0], progress=False, lanes=1, runs_root=runs)
    record = second.records["refine", 0]
    assert record["stage"] == "toy-paper-narrow"
    assert record["config"]["upstream_hash"] == experiments.expected_hash("toy-paper", "narrow", "synthetic", "smoke")
