"""Learnable joint groups (handlib.models.joint_groups): selector, fusion, soft-argmax, shapes, variants,
exact resume, a smoke run, and the cost beside the spec's counts."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import default_collate

from handlib.joints import get_convention
from handlib.losses import gaussian_heatmap_targets
from handlib.models import joint_groups as JG
from handlib.models.registry import get_model_spec

SMALL = dict(image_size=64, width=16, branch=8)       # 16 x 16 maps: every block runs, in milliseconds
J = 14


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-equal, NaN equal to NaN (θ's trace holds NaN at the points not reached)."""
    if a.is_floating_point():
        return a.shape == b.shape and torch.equal(torch.nan_to_num(a, nan=7.5), torch.nan_to_num(b, nan=7.5))
    return torch.equal(a, b)


def small(variant="g3", seed=0, **kw):
    torch.manual_seed(seed)
    return JG.build(variant, **{**SMALL, **kw})


@pytest.fixture(scope="module")
def batch():
    from handlib.synth.dataset import SyntheticHands

    frames = SyntheticHands("joint-groups-tests", 6, size=64, convention="nyu", seed=0, progress=False)
    return default_collate([frames[i] for i in range(len(frames))])


# --- the selector ------------------------------------------------------------------------------------

def test_relaxed_samples_sum_to_one_and_become_one_hot_as_the_temperature_falls():
    logits = torch.randn(J, 3, generator=torch.Generator().manual_seed(1))
    noise = JG.gumbel_noise((J, 3), torch.Generator().manual_seed(2))
    for tau in (1.0, 0.5, 0.1):
        sample = JG.relaxed_one_hot(logits, tau, noise)
        assert sample.shape == (J, 3) and torch.allclose(sample.sum(-1), torch.ones(J))
        assert float(sample.min()) >= 0
    soft = JG.relaxed_one_hot(logits, 1.0, noise)
    hard = JG.relaxed_one_hot(logits, 1e-3, noise)
    # the hard limit: a one-hot at the argmax of logits + noise
    assert torch.allclose(hard, torch.nn.functional.one_hot((logits + noise).argmax(-1), 3).float(), atol=1e-6)
    assert float(soft.max(-1).values.min()) < 0.99          # at τ = 1 the rows are not one-hot


def test_the_gradient_reaches_theta_through_the_network(batch):
    net = small()
    terms = JG.loss(JG.forward(net, batch), batch)
    terms["total"].backward()
    assert net.theta.requires_grad and net.theta.grad is not None
    assert float(net.theta.grad.abs().sum()) > 0
    # and through the sample alone: d(sample · w)/dθ ≠ 0
    theta = torch.zeros(J, 3, requires_grad=True)
    noise = JG.gumbel_noise((J, 3), torch.Generator().manual_seed(0))
    (JG.relaxed_one_hot(theta, 0.5, noise) * torch.arange(3.0)).sum().backward()
    assert float(theta.grad.abs().sum()) > 0


def test_one_sample_per_step_shared_by_the_batch_and_a_function_of_seed_and_step(batch):
    net = small(seed=5)
    out = net(batch["depth"])
    assert out["selection"].shape == (J, 3) and int(net.step) == 1 and out["temperature"] == 1.0
    # each frame's output is the same weighted sum of its group outputs
    weights = out["selection"].t()
    assert torch.allclose(out["uv"], (out["group_uv"] * weights.unsqueeze(-1)).sum(1))
    again = small(seed=5)
    assert torch.equal(again.sample_selection(0), out["selection"])          # same seed, same step
    assert not torch.equal(net.sample_selection(1), out["selection"])       # next step, new noise
    assert not torch.equal(small(seed=6).sample_selection(0), out["selection"])
    other_variant = small("g3_no_fusion", seed=5)                            # variants of one seed: paired noise
    assert torch.equal(other_variant.sample_selection(0), out["selection"])


def test_temperature_schedule_and_step_counter(batch):
    assert JG.temperature_at(0, 30) == 1.0
    assert JG.temperature_at(30, 30) == pytest.approx(JG.TAU_MIN)
    assert JG.temperature_at(15, 30) == pytest.approx(math.sqrt(JG.TAU_MIN))      # geometric halfway
    assert JG.temperature_at(1000, 30) == JG.TAU_MIN
    taus = [JG.temperature_at(t, 30, tau_min=0.5) for t in range(40)]
    assert all(a >= b for a, b in zip(taus, taus[1:])) and taus[-1] == 0.5
    net = small(anneal_steps=2)
    for _ in range(3):
        net(batch["depth"])
    assert int(net.step) == 3 and net.temperature() == pytest.approx(JG.TAU_MIN)
    net.eval()
    net(batch["depth"])
    assert int(net.step) == 3                       # evaluation takes no step
    with pytest.raises(ValueError, match="anneal_steps"):
        JG.temperature_at(0, 0)


def test_theta_is_traced_at_fixed_steps(batch):
    net = small(anneal_steps=16)                     # trace at steps 0, 2, 4, ...
    assert net.trace_steps.tolist()[:3] == [0, 2, 4] and net.trace_steps.tolist()[8] == 16
    opt = torch.optim.Adam([net.theta], lr=0.1)
    seen = []
    for _ in range(3):
        seen.append(net.theta.detach().clone())
        JG.loss(JG.forward(net, batch), batch)["total"].backward()
        opt.step()
        opt.zero_grad()
    assert torch.equal(net.theta_trace[0], seen[0]) and torch.equal(net.theta_trace[1], seen[2])
    assert not torch.equal(seen[2], seen[0]) and torch.isnan(net.theta_trace[2:]).all()
    assert "theta_trace" in net.state_dict()


def test_hard_argmax_at_test_is_deterministic(batch):
    net = small()
    with torch.no_grad():
        net.theta.copy_(torch.randn(J, 3, generator=torch.Generator().manual_seed(3)))
    net.eval()
    first, second = net(batch["depth"]), net(batch["depth"])
    assert torch.equal(first["uv"], second["uv"]) and torch.equal(first["z"], second["z"])
    expected = torch.nn.functional.one_hot(net.theta.argmax(-1), 3).float()
    assert torch.equal(first["selection"], expected)
    picked = first["group_uv"][:, net.theta.argmax(-1), torch.arange(J)]      # (B, J, 2): each joint's group
    assert torch.equal(first["uv"], picked)


def test_stochastic_test_time_sampling_as_the_released_script(batch):
    net = small()
    with torch.no_grad():
        net.theta.copy_(torch.randn(J, 3, generator=torch.Generator().manual_seed(3)))
    net.eval()
    infer_a, infer_b = JG.stochastic_infer(), JG.stochastic_infer()
    a1, a2 = infer_a(net, batch), infer_a(net, batch)
    b1 = infer_b(net, batch)
    assert torch.equal(a1["selection"], b1["selection"])                 # seed 60 fixes the draws
    assert not torch.equal(a1["selection"], a2["selection"])             # a new sample per batch
    assert torch.allclose(a1["selection"].sum(-1), torch.ones(J))
    assert "joints_norm" in a1 and a1["joints_norm"].shape == (6, J, 3)
    fixed = small("g3_hand").eval()                                       # a fixed grouping is never sampled
    assert torch.equal(JG.stochastic_infer()(fixed, batch)["selection"], fixed.hard_selection())


# --- fixed groupings --------------------------------------------------------------------------------

def test_hand_crafted_grouping_of_nyu():
    names = get_convention("nyu").joint_names
    groups = dict(zip(names, JG.hand_crafted_groups("nyu")))
    assert {n for n, g in groups.items() if g == 0} == {"Thumb.T", "Thumb.R2", "Thumb.R1", "Wrist1"}
    assert {n for n, g in groups.items() if g == 1} == {"Mid.T", "Mid.R", "Index.T", "Index.R", "Palm"}
    assert {n for n, g in groups.items() if g == 2} == {"Pinky.T", "Pinky.R", "Ring.T", "Ring.R", "Wrist2"}
    all_thumb = dict(zip(names, JG.hand_crafted_groups("nyu", palm="thumb")))
    assert all(all_thumb[n] == 0 for n in ("Wrist1", "Wrist2", "Palm"))
    for convention in ("icvl", "msra", "hands17", "full"):          # every convention's names parse
        assert set(JG.hand_crafted_groups(convention)) == {0, 1, 2}
    with pytest.raises(ValueError, match="palm"):
        JG.hand_crafted_groups("nyu", palm="wrist")


def test_random_grouping_is_fixed_and_keeps_the_group_sizes():
    hand = JG.hand_crafted_groups("nyu")
    sizes = tuple(hand.count(g) for g in range(3))
    random = JG.random_groups(J, sizes)
    assert random == JG.random_groups(J, sizes)                        # a constant draw
    assert tuple(random.count(g) for g in range(3)) == sizes and random != hand
    assert JG.random_groups(J, sizes, seed=1) != random


@pytest.mark.parametrize("variant", ["g3_hand", "g3_random", "g1"])
def test_a_fixed_grouping_gets_no_gradient_on_theta(batch, variant):
    net = small(variant)
    out = JG.forward(net, batch)
    JG.loss(out, batch)["total"].backward()
    assert not net.theta.requires_grad and net.theta.grad is None
    assert int(net.step) == 0 and "temperature" not in out
    assert torch.equal(out["selection"], torch.nn.functional.one_hot(net.fixed_groups, net.config.groups).float())
    expected = {"g3_hand": JG.hand_crafted_groups("nyu"), "g1": (0,) * J}.get(variant)
    if expected is not None:
        assert tuple(net.groups().tolist()) == expected
    from handlib.train import parameter_groups
    from handlib.recipe import Recipe

    trained = {id(p) for group in parameter_groups(net, Recipe()) for p in group["params"]}
    assert id(net.theta) not in trained


# --- blocks -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("groups", [2, 3, 4])
def test_fusion_starts_at_the_codes_pattern(groups):
    fusion = JG.Fusion(groups, channels=5)
    fusion.reset_pattern()
    eye = torch.eye(5)
    for g, unit in enumerate(fusion.convs):
        weight = unit.conv.weight[:, :, 0, 0]
        for h in range(groups):
            block = weight[:, h * 5:(h + 1) * 5]
            expected = 0.9 if h == g else 0.1 / (groups - 1)
            assert torch.allclose(block, expected * eye), (g, h)
    net = small("g4")                                 # build() applies it after the default init
    assert torch.allclose(net.fusion.convs[1].conv.weight[:8, 8:16, 0, 0], 0.9 * torch.eye(8))
    assert torch.allclose(net.fusion.convs[1].conv.weight[:8, :8, 0, 0], torch.eye(8) / 30)
    with pytest.raises(ValueError, match="at least 2"):
        JG.Fusion(1)


def test_soft_argmax_of_a_delta_map_returns_its_location():
    maps = torch.zeros(2, 3, 16, 12)
    where = [(5, 9), (0, 0), (11, 15)]                 # (x, y)
    for j, (x, y) in enumerate(where):
        maps[:, j, y, x] = 100.0
    cells, prob = JG.soft_argmax(maps)
    assert torch.allclose(cells, torch.tensor(where, dtype=torch.float32).expand(2, 3, 2), atol=1e-4)
    assert torch.allclose(prob.sum((-2, -1)), torch.ones(2, 3))
    # β scales the map before the softmax: a negative β moves the soft-argmax away from the peak
    flipped, _ = JG.soft_argmax(maps, torch.tensor([-1.0, 1.0, 1.0]))
    assert float((flipped[0, 0] - torch.tensor([5.0, 9.0])).abs().max()) > 1
    # cell centres back to crop pixels: softmax of a log-Gaussian around a crop pixel's cell (a discrete
    # Gaussian of σ = 1 cell, far from the border) has its mean there, and maps back to that pixel
    pixels = torch.tensor([[[20.0, 41.0], [27.3, 30.6]]])
    centre = (pixels + 0.5) * (16 / 64) - 0.5
    grid = torch.arange(16.0)
    log_gauss = -((grid.reshape(1, 1, 1, 16) - centre[..., 0, None, None]) ** 2
                  + (grid.reshape(1, 1, 16, 1) - centre[..., 1, None, None]) ** 2) / 2
    found = JG.cells_to_crop(JG.soft_argmax(log_gauss)[0], 64, 16)
    assert torch.allclose(found, pixels, atol=1e-3)


def test_beta_starts_positive_and_the_backbone_maps_at_zero():
    net = small()
    assert all(torch.equal(head.beta, torch.ones(J)) for head in net.recovery)
    assert float(net.backbone.heatmaps.weight.detach().abs().sum()) == 0
    assert torch.equal(net.theta, torch.full((J, 3), 0.5))


def test_every_intermediate_shape(batch):
    net = small()
    out = net(batch["depth"], return_features=True)
    f, b, m = out["features"], 6, 16
    assert out["heatmaps0"].shape == (b, J, m, m)
    assert f["encoding"].shape == (b, 16, m, m) and f["shared"].shape == (b, 8, m, m)
    assert [t.shape for t in f["branches"]] == [(b, 8, m, m)] * 3 == [t.shape for t in f["fused"]]
    assert f["group_heatmaps"].shape == f["group_depthmaps"].shape == (b, 3, J, m, m)
    assert out["group_uv"].shape == (b, 3, J, 2) and out["group_z"].shape == (b, 3, J)
    assert out["uv"].shape == (b, J, 2) and out["z"].shape == (b, J) and out["selection"].shape == (J, 3)
    branch = net.branches[0]                          # inside a group's U-net: 16 -> 8 -> 4 -> 8 -> 16
    x = f["shared"]
    bf0 = branch.conv0(x)
    bf1 = branch.conv1(bf0)
    bf2 = branch.down1(bf1)
    bf3 = branch.down2(bf2)
    assert (bf1.shape[-1], bf2.shape[-1], bf3.shape[-1], branch.up2(bf3).shape[-1]) == (16, 8, 4, 8)
    stem = net.backbone.stem(batch["depth"])
    assert stem.shape == (b, 4, 32, 32)               # width / 4 channels at S / 2
    paper = JG.build(image_size=128, width=16, branch=8)
    out = paper(torch.zeros(2, 1, 128, 128), return_features=True)
    assert out["heatmaps0"].shape == (2, J, 32, 32) and out["features"]["group_heatmaps"].shape[-1] == 32
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="divisible"):
        JG.build(image_size=96)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_one_group_without_fusion_is_a_plain_single_branch_network(batch, mode):
    net = small("g1")
    assert net.fusion is None and len(net.branches) == 1
    net.train(mode == "train")
    x = batch["depth"]
    with torch.no_grad():
        out = net(x)
        heat, encoding = net.backbone(x)                       # the plain network, layer by layer
        features = net.branches[0](net.backbone_conv(torch.cat([heat, encoding], 1)))
        cells, z, _, _ = net.recovery[0](features)
    assert torch.equal(out["uv"], JG.cells_to_crop(cells, 64, 16)) and torch.equal(out["z"], z)


def test_variants_share_the_initial_weights_of_shared_layers():
    g3, no_fusion, g4 = small("g3", seed=3), small("g3_no_fusion", seed=3), small("g4", seed=3)
    a, b, c = g3.state_dict(), no_fusion.state_dict(), g4.state_dict()
    shared = [k for k in b if k in a and not k.startswith("fusion.")]
    assert len(shared) > 100 and all(same(a[k], b[k]) for k in shared)
    branch_keys = [k for k in a if k.startswith(("branches.2.", "recovery.2."))]
    assert branch_keys and all(torch.equal(a[k], c[k]) for k in branch_keys)
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in g3.modules())
    other_seed = small("g3", seed=4).state_dict()
    assert not torch.equal(a["branches.0.up2.conv.weight"], other_seed["branches.0.up2.conv.weight"])


# --- loss, spec, training ------------------------------------------------------------------------

def test_loss_is_zero_for_the_truth_and_counts_the_heatmap_term_only_when_weighted(batch):
    outputs = {"uv": batch["joints_crop"][..., :2], "z": batch["joints_crop"][..., 2],
               "heatmaps0": gaussian_heatmap_targets(batch["joints_crop"], 64, 16, JG.HEATMAP_SIGMA),
               "heatmap_weight": 0.1}
    terms = JG.loss(outputs, batch)
    assert float(terms["total"]) == pytest.approx(0.0, abs=1e-6)
    shifted = {**outputs, "uv": outputs["uv"] + torch.tensor([3.2, 0.0]), "heatmap_weight": 0.0}
    terms = JG.loss(shifted, batch)
    assert "L_hm" not in terms and float(terms["L_uv"]) == pytest.approx(3.2 / 32, rel=1e-5)


def test_predictions_back_project_the_truth(batch):
    net = small().eval()
    out = net(batch["depth"])
    from handlib.geometry import normalize_joints
    from handlib.models.liu import joints_from_2d

    xyz = joints_from_2d(batch["joints_crop"][..., :2], batch["joints_crop"][..., 2], batch, net.camera)
    truth = normalize_joints(xyz, batch["com"].double(), batch["cube"].double()).float()
    assert torch.allclose(truth, batch["joints"], atol=1e-3)
    assert JG.forward(net, batch)["joints_norm"].shape == (6, J, 3) and "joints_norm" not in out


def test_spec_variants_labels_and_profiles():
    spec = get_model_spec("joint_groups")
    assert spec.default_variant == "g3" and spec.input_size == 128
    assert set(spec.variants) == {"g1", "g2", "g3", "g4", "g3_no_fusion", "g3_hand", "g3_random"}
    assert all("(ours)" in label for v, label in spec.variants.items() if v != "g3")
    from handlib.profiles import get_profile

    for profile in ("smoke", "book", "full"):
        prof = get_profile(profile, "joint_groups")
        assert {"width", "branch", "anneal_steps"} <= set(prof.extra)
        steps = prof.train_frames * prof.epochs // prof.batch_size
        assert prof.extra["anneal_steps"] < steps             # τ reaches its minimum before the end
    book = get_profile("book", "joint_groups")
    net = spec.build_for("g3", "nyu", get_profile("smoke", "joint_groups"))
    assert (net.width, net.branch, net.anneal_steps) == (16, 8, 5) and book.image_size == 64


def test_a_few_steps_lower_the_loss(batch):
    net = small()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(10):
        terms = JG.loss(JG.forward(net, batch), batch)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        losses.append(float(terms["total"].detach()))
    assert losses[-1] < 0.9 * losses[0]          # measured: 0.96 -> 0.80


def test_resume_is_exact(tmp_path):
    from handlib.datasets import build_datasets
    from handlib.device import seed_everything
    from handlib.profiles import get_profile
    from handlib.recipe import Recipe
    from handlib.train import TrainOptions, fit

    prof = get_profile("smoke", "joint_groups")
    splits = build_datasets("synthetic", prof, "nyu", 64, 0, "")
    recipe = Recipe(optimizer="adam", lr=2e-3, epochs=2, batch_size=16)

    def run(folder, **kw):
        seed_everything(0)
        net = JG.build("g3", **SMALL, anneal_steps=5)
        options = TrainOptions(seed=0, device="cpu", progress=False, checkpoint_dir=folder,
                               meta={"model": "joint_groups"}, **kw)
        return net, fit(net, JG.loss, JG.predict, splits["train"], splits["val"], recipe, options, JG.forward)

    reference, _ = run(tmp_path / "ref")
    _, first = run(tmp_path / "run", stop_after_step=3)
    assert first.interrupted and first.global_step == 3
    resumed, _ = run(tmp_path / "run", resume=True)
    assert int(resumed.step) == int(reference.step) == 8
    for key, value in reference.state_dict().items():
        assert same(resumed.state_dict()[key], value), key
    assert not torch.equal(reference.theta, torch.full((J, 3), 0.5))      # θ did learn


def test_smoke_run_writes_a_record(tmp_path):
    from handlib import results
    from handlib.runs import train_and_record

    record, _, net = train_and_record("joint_groups", variant="g3_hand", profile="smoke", seed=0,
                                      runs_root=tmp_path, results_dir=tmp_path / "results", progress=False)
    assert record["model"] == "joint_groups" and record["variant"] == "g3_hand"
    assert math.isfinite(record["test"]["mean_error_mm"]) and record["config"]["sizes"]["extra"]["width"] == 16
    pred, truth = results.load_predictions(record, tmp_path / "results")
    assert pred.shape == truth.shape == (16, J, 3)


def test_summary_beside_the_specs_counts():
    from handlib.models.summary import summarize

    depth = summarize("joint_groups")                 # the depth adaptation at 128 x 128, G = 3
    assert depth["image_size"] == 128
    assert abs(depth["params"] / 7.46e6 - 1) < 0.005 and abs(depth["macs"] / 2.77e9 - 1) < 0.005
    torch.manual_seed(0)
    rgb = JG.build(in_channels=3, image_size=256, convention="full")      # the released RHD configuration
    from handlib.models.summary import count_flops

    # the code's 7,502,833 less its 24,576 frozen soft-argmax grids and 10,208 biases before BN
    assert sum(p.numel() for p in rgb.parameters()) == 7_502_833 - 24_576 - 10_208
    assert abs(count_flops(rgb, torch.zeros(1, 3, 256, 256)) / 2 / 11.27e9 - 1) < 0.001


def test_grouping_agreement_is_the_rand_index_blind_to_group_numbers():
    assert JG.grouping_agreement([0, 0, 1, 1], [1, 1, 0, 0]) == 1.0        # the same partition, renumbered
    # pairs (01 02 03 12 13 23): a = same, apart, apart, apart, apart, same; b = same, same, apart, same, apart, apart
    assert JG.grouping_agreement([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(3 / 6)
    assert JG.grouping_agreement([0, 1, 2], [0, 0, 0]) == 0.0
    with pytest.raises(ValueError, match="same joints"):
        JG.grouping_agreement([0, 1], [0, 1, 2])
