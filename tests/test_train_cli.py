"""``train`` and ``bench train`` with a tiny model registered here and in-memory datasets."""
from __future__ import annotations

import argparse
import json

import pytest

from handlib import results, runs, train_cli
from handlib.errors import UsageError
from handlib.models import registry
from handlib.models.registry import ModelSpec
from handlib.recipe import Recipe

from test_train import TinyDataset, TinyNet, tiny_loss, tiny_predict

TINY_SPEC = ModelSpec(
    name="tiny-test", paper="none", chapter="tests", variants={"full": "Full", "plain": "Plain"}, default_variant="full",
    build=lambda variant, convention, image_size: TinyNet(regularised=variant == "full"),
    loss=tiny_loss, predict=tiny_predict,
    recipe=Recipe(optimizer="adam", lr=1e-2, epochs=50, batch_size=128, schedule="exponential", gamma=0.96,
                  weight_decay=1e-5),
)


@pytest.fixture(autouse=True)
def tiny_model(monkeypatch):
    """Registered for these tests only, so other tests that loop over every model never see it."""
    monkeypatch.setitem(registry._REGISTRY, TINY_SPEC.name, TINY_SPEC)


@pytest.fixture(autouse=True)
def tiny_datasets(monkeypatch):
    def build(dataset, profile, convention, size, seed, data_root=""):
        return {"train": TinyDataset(min(profile.train_frames, 96)), "val": TinyDataset(16, seed=1),
                "test": TinyDataset(16, seed=2)}
    monkeypatch.setattr(runs, "build_datasets", build)


def parse(*argv):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    train_cli.add_commands(sub)
    bench = sub.add_parser("bench").add_subparsers(dest="target", required=True)
    train_cli.add_bench(bench)
    return parser.parse_args(list(argv))


def test_train_writes_checkpoints_and_a_record(tmp_path, capsys):
    argv = ["train", "tiny-test", "--profile", "smoke", "--device", "cpu", "--out", str(tmp_path / "run"),
            "--results-dir", str(tmp_path / "results"), "--epochs", "2"]
    args = parse(*argv)
    assert args.func(args) == 0
    assert "results record:" in capsys.readouterr().out
    assert (tmp_path / "run" / "last.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
    (record,) = results.load_records(tmp_path / "results", profile="smoke")
    assert (record["model"], record["variant"], record["epochs"], record["seed"]) == ("tiny-test", "full", 2, 0)
    assert record["recipe"]["batch_size"] == 32  # smoke profile's batch, not the paper's 128
    assert record["test"]["frames"] == 16 and record["selection"] == "best_val"
    with pytest.raises(UsageError, match="--resume"):
        args.func(parse(*argv))
    # resume a finished run with more epochs: trains the third epoch only
    args = parse(*argv[:-1], "3", "--resume")
    assert args.func(args) == 0
    (record,) = results.load_records(tmp_path / "results", profile="smoke")
    assert record["epochs"] == 3


def test_train_rejects_bad_choices(tmp_path):
    with pytest.raises(UsageError, match="no variant 'huge'"):
        train_cli.train_and_record("tiny-test", variant="huge", profile="smoke", out=tmp_path)
    with pytest.raises(UsageError, match="no checkpoint"):
        train_cli.train_and_record("tiny-test", profile="smoke", out=tmp_path, resume=True)
    with pytest.raises(SystemExit):
        parse("train", "no-such-model")


def test_bench_train_prints_json(capsys):
    args = parse("bench", "train", "tiny-test", "--steps", "3", "--batch-size", "8", "--device", "cpu", "--json")
    assert args.func(args) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["samples_per_s"] > 0 and 0 <= figures["data_wait_fraction"] <= 1
    assert figures["batch_size"] == 8 and figures["precision"] == "float32"
    assert figures["channels_last"] is True                          # the default layout (issue 13)
    assert isinstance(figures["cpu"], str) and figures["cpu"]        # a speed names its machine
    # TinyNet per sample: conv 1->4 (3x3, 6x6 out) and linear 144->9, 1,296 multiply-adds each. A step
    # is both forwards, both weight gradients and the linear layer's input gradient (the image needs
    # none): 5 x 2 x 1,296 FLOPs.
    assert figures["train_flops_per_sample"] == 5 * 2 * 1296
    assert figures["peak_flops_per_s"] == max(figures["kernel_flops_per_s"].values()) > 1e8
    assert figures["roofline_fraction"] == pytest.approx(
        figures["samples_per_s"] * figures["train_flops_per_sample"] / figures["peak_flops_per_s"])


def test_a_corrupt_checkpoint_is_one_line_and_exit_code_2(tmp_path, capsys):
    from handlib.cli import main

    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    assert main(["train", "tiny-test", "--profile", "smoke", "--device", "cpu", "--out", str(tmp_path),
                 "--resume", "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint ") and "last.pt" in err and "Traceback" not in err
