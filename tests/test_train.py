"""The training loop: recipes, exact resume, AMP on CPU, checkpoint safety. A tiny model keeps it fast.

The tiny model and dataset here are also imported by the torchrun worker of test_train_ddp.py.
"""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from handlib import checkpoint
from handlib.geometry import denormalize_joints
from handlib.recipe import Recipe, recipe_for_profile
from handlib.train import TrainOptions, build_optimizer, fit, load_weights

NUM_JOINTS = 3
SIZE = 8


class TinyDataset(torch.utils.data.Dataset):
    """Sample dicts (the keys the loop reads) whose joints are a fixed function of the depth crop."""

    def __init__(self, n: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.depth = torch.rand(n, 1, SIZE, SIZE, generator=g) * 2 - 1
        mixing = torch.randn(SIZE * SIZE, NUM_JOINTS * 3, generator=torch.Generator().manual_seed(99)) / SIZE
        self.joints = torch.tanh(self.depth.flatten(1) @ mixing).reshape(n, NUM_JOINTS, 3)
        self.com = torch.rand(n, 3, generator=g) * 100 + torch.tensor([0.0, 0.0, 400.0])
        self.cube = torch.full((n, 3), 250.0)
        self.joints_xyz = denormalize_joints(self.joints, self.com, self.cube)

    def __len__(self):
        return len(self.depth)

    def __getitem__(self, i):
        return {"depth": self.depth[i], "joints": self.joints[i], "joints_xyz": self.joints_xyz[i],
                "com": self.com[i], "cube": self.cube[i], "index": torch.tensor(i)}


class TinyNet(nn.Module):
    """(B, 1, 8, 8) -> (B, J, 3). ``regularised`` adds BatchNorm and dropout (RNG and buffers)."""

    def __init__(self, regularised: bool = True):
        super().__init__()
        layers = [nn.Conv2d(1, 4, 3)]
        if regularised:
            layers += [nn.BatchNorm2d(4)]
        layers += [nn.ReLU(), nn.Flatten()]
        if regularised:
            layers += [nn.Dropout(0.2)]
        layers += [nn.Linear(4 * 6 * 6, NUM_JOINTS * 3)]
        self.net = nn.Sequential(*layers)

    def forward(self, depth):
        return self.net(depth).reshape(-1, NUM_JOINTS, 3)


def tiny_loss(outputs, batch):
    mse = ((outputs - batch["joints"]) ** 2).mean()
    return {"total": mse + 0.0 * outputs.abs().mean(), "joints_mse": mse}


def tiny_predict(outputs):
    return outputs


def make_model(regularised: bool = True, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(regularised)


RECIPE = Recipe(optimizer="adam", lr=1e-2, epochs=3, batch_size=8, schedule="exponential", gamma=0.9,
                weight_decay=1e-4, grad_clip=1.0)


def run(tmp_path=None, recipe=RECIPE, regularised=True, **option_kwargs):
    model = make_model(regularised)
    options = TrainOptions(seed=3, progress=False, device="cpu",
                           checkpoint_dir=tmp_path, meta={"model": "tiny"}, **option_kwargs)
    result = fit(model, tiny_loss, tiny_predict, TinyDataset(44), TinyDataset(16, seed=1), recipe, options)
    return model, result


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- recipe ---------------------------------------------------------------------------------------

def test_recipe_schedules_and_validation():
    exp = Recipe(lr=1e-3, schedule="exponential", gamma=0.96)
    assert exp.lr_at(0) == 1e-3 and math.isclose(exp.lr_at(2), 1e-3 * 0.96 ** 2)
    step = Recipe(optimizer="sgd", lr=0.1, schedule="step", gamma=0.1, milestones=(15, 25), epochs=30)
    assert [round(step.lr_at(e), 6) for e in (0, 14, 15, 24, 25)] == [0.1, 0.1, 0.01, 0.01, 0.001]
    assert Recipe.from_dict(step.to_dict()) == step
    with pytest.raises(ValueError, match="optimizer"):
        Recipe(optimizer="rmsprop")
    with pytest.raises(ValueError, match="milestones"):
        Recipe(schedule="step")


def test_recipe_for_profile_scales_milestones():
    from handlib.profiles import get_profile
    paper = Recipe(optimizer="sgd", lr=0.1, schedule="step", gamma=0.1, milestones=(15, 25), epochs=30,
                   batch_size=32)
    assert recipe_for_profile(paper, get_profile("full")) == paper
    book = recipe_for_profile(paper, get_profile("book"))
    assert (book.epochs, book.batch_size, book.milestones) == (10, 64, (5, 8))


def test_no_weight_decay_on_batchnorm_and_biases():
    model = make_model()
    groups = build_optimizer(model, Recipe(weight_decay=1e-5)).param_groups
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 1e-5 and groups[1]["weight_decay"] == 0.0
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    assert names == {"net.0.weight", "net.5.weight"}  # conv and linear weights only


# --- the loop -------------------------------------------------------------------------------------

def test_fit_learns_and_records_history(tmp_path):
    model, result = run(tmp_path)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[0]["lr"] == 1e-2 and math.isclose(result.history[2]["lr"], 1e-2 * 0.81)
    assert set(result.history[0]["train"]) == {"total", "joints_mse"}
    assert result.history[-1]["train"]["total"] < result.history[0]["train"]["total"]
    assert 0 <= result.history[0]["data_wait_fraction"] <= 1
    best = min(result.history, key=lambda h: h["val"]["mean_error_mm"])
    assert result.best == {"epoch": best["epoch"], "mean_error_mm": best["val"]["mean_error_mm"]}
    assert result.global_step == 3 * (44 // 8)
    assert {p.name for p in tmp_path.iterdir()} == {"last.pt", "best.pt", "history.json"}
    # best.pt holds the weights of the best validation epoch
    fresh = make_model()
    assert load_weights(fresh, tmp_path / "best.pt", {"model": "tiny"})["model"] == "tiny"
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in result.best_state.items())


FAST_BF16 = replace(RECIPE, precision="bf16", fused_optimizer=True)
INVERSE = replace(RECIPE, optimizer="sgd", schedule="inverse", gamma=1.0, lr_decay=0.05)


# mid-epoch, epoch boundary, mid-epoch of epoch 2; fp16 autocast, whose GradScaler state resumes too;
# and a bf16 recipe with the fused optimiser (its state resumes as the per-tensor loop's does); an
# inverse-time schedule (its rate a function of the global step) stopped mid-epoch 2
@pytest.mark.parametrize("stop_at, amp, recipe", [(2, "off", RECIPE), (5, "off", RECIPE), (7, "off", RECIPE),
                                                  (3, "fp16", RECIPE), (5, "auto", FAST_BF16),
                                                  (7, "off", INVERSE)])
def test_resume_is_bit_identical(tmp_path, stop_at, amp, recipe):
    reference, ref_result = run(tmp_path / "ref", amp=amp, recipe=recipe)
    _, first = run(tmp_path / "run", stop_after_step=stop_at, amp=amp, recipe=recipe)
    assert first.interrupted and first.global_step == stop_at
    resumed, result = run(tmp_path / "run", resume=True, amp=amp, recipe=recipe)
    for key, value in weights(reference).items():
        assert torch.equal(resumed.state_dict()[key], value), key
    assert [h["train"] for h in result.history] == [h["train"] for h in ref_result.history]
    assert [h["val"] for h in result.history] == [h["val"] for h in ref_result.history]


def noisy_depth(batch):
    """A stand-in augmentation: random noise on the crop from the global RNG (so resume is exact)."""
    noisy_depth.training_indices.extend(batch["index"].tolist())
    return {**batch, "depth": batch["depth"] + 0.1 * torch.randn_like(batch["depth"])}


def test_batch_transform_sees_training_batches_only_and_resumes_exactly(tmp_path):
    noisy_depth.training_indices = []
    plain, _ = run()
    augmented, result = run(tmp_path / "ref", batch_transform=noisy_depth)
    # Every training step went through it (44 // 8 = 5 steps of 8 per epoch); validation did not.
    assert len(noisy_depth.training_indices) == 3 * 5 * 8
    assert set(noisy_depth.training_indices) <= set(range(44))
    assert any(not torch.equal(plain.state_dict()[k], v) for k, v in weights(augmented).items())
    _, first = run(tmp_path / "run", batch_transform=noisy_depth, stop_after_step=7)
    resumed, _ = run(tmp_path / "run", batch_transform=noisy_depth, resume=True)
    for key, value in weights(augmented).items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_resume_after_crash_uses_last_periodic_checkpoint(tmp_path):
    reference, _ = run(tmp_path / "ref")
    calls = {"n": 0}

    def crashing_loss(outputs, batch):
        calls["n"] += 1
        if calls["n"] == 8:  # checkpoints were written after steps 3 and 6
            raise KeyboardInterrupt
        return tiny_loss(outputs, batch)

    model = make_model()
    options = TrainOptions(seed=3, progress=False, device="cpu", checkpoint_dir=tmp_path / "run",
                           checkpoint_every=3, meta={"model": "tiny"})
    with pytest.raises(KeyboardInterrupt):
        fit(model, crashing_loss, tiny_predict, TinyDataset(44), TinyDataset(16, seed=1), RECIPE, options)
    assert checkpoint.load(tmp_path / "run" / "last.pt")["global_step"] == 6
    resumed, _ = run(tmp_path / "run", resume=True, checkpoint_every=3)
    for key, value in weights(reference).items():
        assert torch.equal(resumed.state_dict()[key], value), key


def test_sgd_step_recipe_and_bf16_autocast_on_cpu():
    recipe = Recipe(optimizer="sgd", lr=0.05, epochs=2, batch_size=8, schedule="step", gamma=0.1,
                    milestones=(1,))
    model, result = run(recipe=recipe, amp="bf16")
    assert [h["lr"] for h in result.history] == [0.05, pytest.approx(0.005)]
    assert all(math.isfinite(h["train"]["total"]) for h in result.history)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_bf16_recipe_autocasts_on_cpu_and_the_fused_optimiser_steps_like_the_loop():
    """precision="bf16" is bf16 autocast under amp="auto" on a CPU (an explicit --amp still wins);
    the fused optimiser is another rounding of the same update: close to the per-tensor loop's, not equal."""
    from handlib.train import build_optimizer, resolve_amp

    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu, "bf16") is torch.bfloat16 and resolve_amp("auto", cpu) is None
    assert resolve_amp("off", cpu, "bf16") is None
    _, result = run(recipe=FAST_BF16)
    assert result.precision == "bfloat16" and run(recipe=RECIPE)[1].precision == "float32"
    models = [make_model(), make_model()]
    steppers = [build_optimizer(m, replace(RECIPE, fused_optimizer=f)) for m, f in zip(models, (False, True))]
    assert steppers[1].defaults["fused"] and not steppers[0].defaults["fused"]
    for _ in range(3):                                   # the same gradients, three updates
        for model, stepper in zip(models, steppers):
            torch.manual_seed(5)
            for param in model.parameters():
                param.grad = torch.randn_like(param)
            stepper.step()
    for (key, looped), fused in zip(models[0].state_dict().items(), models[1].state_dict().values()):
        assert torch.allclose(fused, looped, rtol=1e-5, atol=1e-7), key
    assert not torch.equal(models[0].net[0].weight, make_model().net[0].weight)     # they did move
    with pytest.raises(ValueError, match="precision"):
        Recipe(precision="fp8")


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        fit(make_model(), tiny_loss, tiny_predict, TinyDataset(4), TinyDataset(4), RECIPE,
            TrainOptions(progress=False, device="cpu"))
    with pytest.raises(ValueError, match="'total'"):
        fit(make_model(), lambda o, b: {"mse": o.mean()}, tiny_predict, TinyDataset(8), TinyDataset(4),
            RECIPE, TrainOptions(progress=False, device="cpu"))
    with pytest.raises(ValueError, match="validation set is empty"):
        fit(make_model(), tiny_loss, tiny_predict, TinyDataset(8), TinyDataset(0), RECIPE,
            TrainOptions(progress=False, device="cpu"))
    with pytest.raises(ValueError, match="amp="):
        run(amp="fp8")


# --- checkpoints ----------------------------------------------------------------------------------

def test_resume_with_other_model_or_recipe_names_the_mismatch(tmp_path):
    run(tmp_path, stop_after_step=2)
    model = make_model()
    with pytest.raises(checkpoint.CheckpointError, match="model='tiny'.*model='other'"):
        fit(model, tiny_loss, tiny_predict, TinyDataset(44), TinyDataset(16), RECIPE,
            TrainOptions(progress=False, device="cpu", checkpoint_dir=tmp_path, resume=True,
                         meta={"model": "other"}, seed=3))
    with pytest.raises(checkpoint.CheckpointError, match="recipe"):
        run(tmp_path, recipe=Recipe(lr=0.5, epochs=3, batch_size=8), resume=True)
    with pytest.raises(checkpoint.CheckpointError, match="does not fit this model"):
        load_weights(make_model(regularised=False), tmp_path / "last.pt")


def test_corrupt_or_truncated_checkpoint_gives_clear_error(tmp_path):
    run(tmp_path, stop_after_step=2)
    good = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "last.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(checkpoint.CheckpointError, match="last.pt is corrupt, truncated"):
        run(tmp_path, resume=True)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="junk.pt"):
        checkpoint.load(tmp_path / "junk.pt")
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not a handlib checkpoint"):
        checkpoint.load(tmp_path / "foreign.pt")


def test_crash_mid_write_keeps_previous_file(tmp_path):
    target = tmp_path / "state.pt"
    checkpoint.save({"format_version": checkpoint.FORMAT_VERSION, "x": torch.ones(3)}, target)

    def dies_half_way(f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_write(target, dies_half_way)
    assert torch.equal(checkpoint.load(target)["x"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temp file left behind


def test_plot_history_draws_every_term():
    import matplotlib
    matplotlib.use("Agg")
    from handlib.plots import plot_history
    _, result = run()
    fig = plot_history(result.history, title="tiny")
    loss_ax = fig.axes[0]
    assert [line.get_label() for line in loss_ax.get_lines()] == ["total", "joints_mse"]
    with pytest.raises(ValueError, match="empty"):
        plot_history([])


def test_learning_curve_points_do_not_change_what_is_learnt(tmp_path):
    """Validating at log-spaced points (a learning curve) leaves the training bit-identical, records
    the points in order of samples seen, and survives an interrupted, resumed run."""
    recipe = Recipe(optimizer="adam", lr=1e-2, epochs=2, batch_size=8)
    train, val = TinyDataset(64), TinyDataset(16, seed=1)

    def run(**options):
        model = make_model()
        result = fit(model, tiny_loss, tiny_predict, train, val, recipe,
                     TrainOptions(device="cpu", progress=False, **options))
        return model, result

    plain, plain_result = run()
    curved, curved_result = run(curve_points=6)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), curved.state_dict().values()))
    seen = [c["samples_seen"] for c in curved_result.curve]
    assert seen == sorted(seen) and seen[-1] == 2 * 64 and len(seen) > 2          # epoch ends included
    assert [c["samples_seen"] for c in plain_result.curve] == [64, 128]              # epoch ends only
    run(curve_points=6, checkpoint_dir=tmp_path, stop_after_step=5)
    _, resumed = run(curve_points=6, checkpoint_dir=tmp_path, resume=True)
    assert [c["samples_seen"] for c in resumed.curve] == seen
    assert [c["val"] for c in resumed.curve] == [c["val"] for c in curved_result.curve]


def test_cosine_schedule_with_warm_up_is_set_every_step():
    recipe = Recipe(schedule="cosine", lr=1.0, epochs=2, batch_size=8, warmup_fraction=0.25)
    # 8 steps: a 2-step linear warm-up, then half a cosine over the other 6.
    expected = [0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 6)), 0.75, 0.5, 0.25, 0.5 * (1 + math.cos(5 * math.pi / 6))]
    assert [recipe.lr_at_step(s, 4) for s in range(8)] == pytest.approx(expected)
    plain = Recipe(schedule="exponential", lr=1e-3, gamma=0.96, epochs=3)
    assert [plain.lr_at_step(s, 5) for s in range(15)] == [plain.lr_at(s // 5) for s in range(15)]
    assert not plain.per_step and recipe.per_step
    model = make_model()
    result = fit(model, tiny_loss, tiny_predict, TinyDataset(32), TinyDataset(8, seed=1),
                 Recipe(schedule="cosine", lr=1e-2, epochs=2, batch_size=8, warmup_fraction=0.25),
                 TrainOptions(device="cpu", progress=False))
    # the rate of each epoch's last step: step 3 (0.933 x lr) and step 7 (0.067 x lr)
    assert [h["lr"] for h in result.history] == pytest.approx([1e-2 * expected[3], 1e-2 * expected[7]])


def test_inverse_schedule_is_torch7_learning_rate_decay():
    """Torch7 optim.sgd's learningRateDecay: lr / (1 + t * decay) at the update after t updates."""
    recipe = Recipe(optimizer="sgd", schedule="inverse", lr=0.1, lr_decay=0.25, epochs=2, batch_size=8)
    assert [recipe.lr_at_step(t, 4) for t in range(8)] == pytest.approx([0.1 / (1 + 0.25 * t) for t in range(8)])
    assert recipe.per_step and Recipe.from_dict(recipe.to_dict()) == recipe
    assert recipe.to_dict()["lr_decay"] == 0.25
    warm = replace(recipe, warmup_fraction=0.25)          # a warm-up ramps the same rates up over 2 steps
    assert [warm.lr_at_step(t, 4) for t in range(3)] == pytest.approx([0.05, 0.1 / 1.25, 0.1 / 1.5])
    with pytest.raises(ValueError, match="lr_decay"):
        Recipe(schedule="inverse")
    with pytest.raises(ValueError, match="lr_decay"):
        Recipe(lr_decay=-1e-5)
    model = make_model()
    result = fit(model, tiny_loss, tiny_predict, TinyDataset(32), TinyDataset(8, seed=1), recipe,
                 TrainOptions(device="cpu", progress=False))
    # the rate of each epoch's last step: after 3 and 7 updates
    assert [h["lr"] for h in result.history] == pytest.approx([0.1 / 1.75, 0.1 / 2.75])


def test_recipe_fields_added_later_leave_old_configurations_unchanged():
    """warmup_fraction at its default is not in to_dict(), so the committed records' configuration
    hashes still match what the current code would train (their runs are reused, not retrained)."""
    import json
    from pathlib import Path

    from handlib.experiments import expected_hash

    assert not {"warmup_fraction", "precision", "fused_optimizer", "lr_decay"} & set(Recipe().to_dict())
    assert Recipe(warmup_fraction=0.1).to_dict()["warmup_fraction"] == 0.1
    assert Recipe.from_dict(Recipe(warmup_fraction=0.1).to_dict()) == Recipe(warmup_fraction=0.1)
    records = sorted((Path(__file__).resolve().parents[1] / "data" / "results").glob("crossinfonet__*book*.json"))
    assert records, "no committed CrossInfoNet book records"
    for path in records:
        record = json.loads(path.read_text())
        assert record["config_hash"] == expected_hash("crossinfonet", record["variant"], "synthetic", "book"), path
