"""CrossInfoNet: shapes, parameter count, variants, BN folding, training steps, CLIs."""
import argparse
import json

import pytest
import torch

from handlib.models import bench, summary
from handlib.models.crossinfonet import (VARIANTS, CrossInfoNet, assemble_from_branches,
                                         data_dependent_init, get_variant,
                                         init_heatmaps_from_targets, init_outputs_from_targets)
from handlib.losses import crossinfonet_heatmap_targets
from handlib.profiles import get_profile
from handlib.models.registry import get_model_spec
from handlib.train import build_optimizer, parameter_groups


@pytest.fixture(scope="module")
def released_model():
    torch.manual_seed(0)
    return CrossInfoNet("cross_hm", "nyu", 96)


def _batch(size=2, joints=14, image_size=96, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "depth": torch.rand(size, 1, image_size, image_size, generator=generator) * 2 - 1,
        "joints": torch.rand(size, joints, 3, generator=generator) * 2 - 1,
        "joints_crop": torch.rand(size, joints, 3, generator=generator) * image_size,
    }


def test_every_intermediate_shape_for_96_input(released_model):
    released_model.eval()
    with torch.no_grad():
        out = released_model(_batch()["depth"], return_features=True)
    expected = {
        "stem": (32, 48, 48), "block1": (64, 24, 24), "block2": (128, 12, 12),
        "block3": (256, 6, 6), "block4": (256, 3, 3), "fpn1": (256, 24, 24),
        "fpn2": (256, 12, 12), "fpn3": (256, 6, 6), "fpn4": (256, 3, 3), "T": (256, 12, 12),
        "P0": (256, 12, 12), "F0": (256, 12, 12), "finger_attention": (256, 12, 12),
        "palm_attention": (256, 12, 12), "P1": (512, 12, 12), "F1": (512, 12, 12),
        "P2": (256, 12, 12), "F2": (256, 12, 12), "P_pooled": (256, 6, 6),
        "F_pooled": (256, 6, 6), "P_fc": (1024,), "F_fc": (1024,),
    }
    features = out["features"]
    assert set(features) == set(expected)
    for name, shape in expected.items():
        assert tuple(features[name].shape) == (2,) + shape, name
    heads = {"hand": (14, 3), "palm": (9, 3), "finger": (5, 3), "heatmap": (14, 24, 24),
             "palm_heatmap": (9, 24, 24), "finger_heatmap": (5, 24, 24)}
    for name, shape in heads.items():
        assert tuple(out[name].shape) == (2,) + shape, name
    # The cross-connection is a plain subtraction of post-ReLU P0 / F0 from T.
    torch.testing.assert_close(features["finger_attention"], features["T"] - features["P0"])
    torch.testing.assert_close(features["P1"][:, 256:], features["T"] - features["F0"])


def test_nyu_parameter_count_matches_released_architecture(released_model):
    assert summary.count_parameters(released_model) == pytest.approx(23.84e6, rel=0.01)
    # Base keeps every layer but the cross-concat (spec sketch: 23.51 M with heat-map heads).
    assert summary.count_parameters(CrossInfoNet("base_hm")) == pytest.approx(23.51e6, rel=0.01)


def test_a_named_smaller_width_scales_every_channel_count_and_nothing_else():
    from dataclasses import replace

    half = CrossInfoNet("cross_hm", width=0.5)
    full = CrossInfoNet("cross_hm")
    assert half.stem.conv.out_channels == 16 and half.stages[3][-1].expand.conv.out_channels == 128
    assert half.palm_branch.fc1.linear.out_features == 512 and half.hand_head.linear.in_features == 1024
    assert len(list(half.modules())) == len(list(full.modules()))          # same units, same depth
    params = lambda net: sum(p.numel() for p in net.parameters())
    assert 0.2 < params(half) / params(full) < 0.3                           # ~ width squared
    out = half(torch.zeros(2, 1, 96, 96), with_heatmaps=True)
    assert out["hand"].shape == (2, 14, 3) and out["heatmap"].shape == (2, 14, 24, 24)
    with pytest.raises(ValueError, match="width scale must be in"):
        CrossInfoNet("base", width=1.5)
    # The profile setting reaches the network through ModelSpec.build_for
    spec, book = get_model_spec("crossinfonet"), get_profile("book", "crossinfonet")
    assert spec.build_for("base", "nyu", book).widths.scale == book.extra.get("width", 1.0)
    narrow = spec.build_for("base", "nyu", replace(book, extra={**book.extra, "width": 0.5}))
    assert narrow.widths.scale == 0.5


def test_partitions_set_head_sizes_per_convention():
    for convention, (joints, palm, finger) in {"icvl": (16, 6, 10), "msra": (21, 6, 15)}.items():
        model = CrossInfoNet("cross", convention).eval()
        with torch.no_grad():
            out = model(torch.zeros(1, 1, 96, 96))
        assert out["hand"].shape == (1, joints, 3)
        assert out["palm"].shape == (1, palm, 3) and out["finger"].shape == (1, finger, 3)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_forward_backward(variant):
    torch.manual_seed(0)
    spec = get_model_spec("crossinfonet")
    model = spec.build(variant=variant, convention="nyu", image_size=96).train()
    batch = _batch()
    outputs = model(batch["depth"])
    terms = spec.loss(outputs, batch)
    assert ("L_ht" in terms) == get_variant(variant).heatmaps
    assert ("heatmap" in outputs) == get_variant(variant).heatmaps
    terms["total"].backward()
    # Every parameter is trained by the loss: no dead heads in any variant.
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert spec.predict(outputs).shape == (2, 14, 3)
    expected_branch_in = 512 if get_variant(variant).cross else 256
    assert model.palm_branch.refine.reduce.conv.in_channels == expected_branch_in


def test_algorithm_1_assembly_scatters_branch_joints_back():
    joints = torch.arange(14 * 3, dtype=torch.float32).reshape(1, 14, 3)
    palm_index = torch.tensor([1, 3, 5, 7, 9, 10, 11, 12, 13])
    finger_index = torch.tensor([0, 2, 4, 6, 8])
    outputs = {"palm": joints[:, palm_index], "finger": joints[:, finger_index],
               "palm_joints": palm_index, "finger_joints": finger_index}
    torch.testing.assert_close(assemble_from_branches(outputs), joints)


def test_fuse_for_inference_gives_the_same_outputs():
    torch.manual_seed(0)
    model = CrossInfoNet("cross_hm", "nyu")
    # Non-trivial BN statistics and affine parameters, so that folding has work to do.
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
    model.eval()
    depth = _batch()["depth"]
    with torch.no_grad():
        reference = model(depth)
        fused = model.fuse_for_inference()
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
        got = fused.to(memory_format=torch.channels_last)(
            depth.contiguous(memory_format=torch.channels_last))
    for key in ("hand", "palm", "finger", "heatmap", "palm_heatmap", "finger_heatmap"):
        torch.testing.assert_close(got[key], reference[key], rtol=1e-4, atol=1e-4)


def test_bad_input_and_variant_are_named():
    model = CrossInfoNet("cross")
    with pytest.raises(ValueError, match=r"\(B, 1, 96, 96\)"):
        model(torch.zeros(1, 96, 96))
    with pytest.raises(ValueError, match="no heat-map heads"):
        model(torch.zeros(1, 1, 96, 96), with_heatmaps=True)
    with pytest.raises(ValueError, match="variant"):
        CrossInfoNet("cross+attention")
    with pytest.raises(ValueError, match="multiple of 16"):
        CrossInfoNet("cross", image_size=100)
    assert get_variant("Cross+HM") is VARIANTS["cross_hm"]


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    spec = get_model_spec("crossinfonet")
    # A 32-pixel crop keeps every layer (FC input 2x2x256) and makes the test take seconds.
    model = spec.build(variant="cross_hm", convention="nyu", image_size=32).train()
    optimizer = build_optimizer(model, spec.recipe)
    batch = _batch(size=8, image_size=32, seed=1)
    losses = []
    for _ in range(4):
        torch.manual_seed(1)      # the same dropout masks every step: a clean comparison
        total = spec.loss(model(batch["depth"]), batch)["total"]
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_output_init_from_targets_starts_predictions_at_the_targets_mean_and_spread():
    torch.manual_seed(0)
    model = CrossInfoNet("base", "nyu", image_size=32).train()
    mean = torch.linspace(-0.3, 0.3, 42).reshape(14, 3)
    std = torch.linspace(0.05, 0.4, 42).reshape(14, 3)
    init_outputs_from_targets(model, mean, std)
    with torch.no_grad():
        out = model(_batch(size=64, image_size=32, seed=3)["depth"])
    # Training-mode BatchNorm normalises each output over the batch, then applies shift and scale.
    for key, joints in (("hand", slice(None)), ("palm", model.palm_joints),
                        ("finger", model.finger_joints)):
        assert torch.allclose(out[key].mean(0), mean[joints], atol=1e-5), key
        assert torch.allclose(out[key].std(0, unbiased=False), std[joints], rtol=1e-2), key
    with pytest.raises(ValueError, match=r"shape \(14, 3\)"):
        init_outputs_from_targets(model, mean[:5], std)


def test_heatmap_init_from_targets_starts_maps_at_each_joints_mean_and_spread():
    torch.manual_seed(0)
    model = CrossInfoNet("cross_hm", "nyu", image_size=32).train()
    mean, std = torch.linspace(0.0, 0.02, 14), torch.linspace(0.03, 0.09, 14)
    init_heatmaps_from_targets(model, mean, std)
    with torch.no_grad():
        out = model(_batch(size=32, image_size=32, seed=4)["depth"])
    maps = out["heatmap"]                                          # (B, 14, 8, 8)
    assert torch.allclose(maps.mean((0, 2, 3)), mean, atol=1e-5)
    assert torch.allclose(maps.std((0, 2, 3), unbiased=False), std, rtol=1e-2)
    # Palm / finger maps: BatchNorm at 12x12 (here 2x2), then a bilinear upsample that keeps the mean.
    assert torch.allclose(out["palm_heatmap"].mean((0, 2, 3)), mean[model.palm_joints], atol=1e-5)
    assert torch.allclose(out["finger_heatmap"].mean((0, 2, 3)), mean[model.finger_joints], atol=1e-5)
    with pytest.raises(ValueError, match="has no heat-map heads"):
        init_heatmaps_from_targets(CrossInfoNet("cross", "nyu", image_size=32), mean, std)


def test_output_init_setting_chooses_between_the_code_and_target_statistics():
    from handlib.synth.dataset import SyntheticHands
    train = SyntheticHands(split="train", n=8, size=32, convention="nyu", seed=0)
    book = get_profile("book", "crossinfonet")
    assert book.extra["output_init"] == "target_stats"
    assert get_profile("full", "crossinfonet").extra["output_init"] == "code"

    torch.manual_seed(0)
    released = CrossInfoNet("cross", "nyu", image_size=32)
    assert data_dependent_init(released, train, get_profile("full", "crossinfonet").extra) == "code"
    assert torch.equal(released.hand_head.bn.weight, torch.ones(42))       # the code's BN start
    assert data_dependent_init(released, train, book.extra) == "target_stats"
    joints = torch.stack([train[i]["joints"] for i in range(8)])
    assert torch.allclose(released.hand_head.bn.weight, joints.std(0).reshape(-1))
    assert torch.allclose(released.hand_head.bn.bias, joints.mean(0).reshape(-1))
    guided = CrossInfoNet("cross_hm", "nyu", image_size=32)
    data_dependent_init(guided, train, book.extra)
    crops = torch.stack([train[i]["joints_crop"] for i in range(8)])
    maps = crossinfonet_heatmap_targets(crops, 32, 8)
    assert torch.allclose(guided.heatmap_head[1].bn.weight, maps.std((0, 2, 3)))
    assert torch.allclose(guided.finger_heatmap_head.maps.bn.bias,
                          maps.mean((0, 2, 3))[guided.finger_joints])
    with pytest.raises(ValueError, match="unknown output_init 'zeros'"):
        data_dependent_init(released, train, {"output_init": "zeros"})


def test_recipe_is_the_papers_and_decays_only_conv_and_fc_weights(released_model):
    recipe = get_model_spec("crossinfonet").recipe
    assert recipe.optimizer == "adam" and recipe.lr == 1e-3
    assert (recipe.batch_size, recipe.epochs) == (128, 110)
    assert recipe.lr_at(2) == pytest.approx(1e-3 * 0.96**2)
    decayed, plain = parameter_groups(released_model, recipe)
    assert decayed["weight_decay"] == 1e-5 and plain["weight_decay"] == 0.0
    weights = {id(m.weight) for m in released_model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    assert {id(p) for p in decayed["params"]} == weights
    assert all(p.dim() == 1 for p in plain["params"])          # BatchNorm γ and β only


def _parser(module, adder):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    getattr(module, adder)(sub)
    return parser


def test_summary_cli_prints_measured_params_and_flops(capsys):
    args = _parser(summary, "add_commands").parse_args(["summary", "crossinfonet", "--json"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["params"] == pytest.approx(23.84e6, rel=0.01)
    assert result["flops"] == pytest.approx(1.11e9, rel=0.01)          # 2 FLOPs per multiply-accumulate, convolutions and matmuls only
    assert result["flops_inference"] == pytest.approx(0.684e9, rel=0.01)   # no S/4 merge, no heads
    args = _parser(summary, "add_commands").parse_args(
        ["summary", "crossinfonet", "--variant", "base", "--dataset", "msra", "--json"])
    args.func(args)
    base = json.loads(capsys.readouterr().out)
    assert base["variant"] == "base" and base["flops"] == base["flops_inference"]


def test_summary_and_bench_reject_bad_arguments():
    from handlib.errors import UsageError

    args = _parser(summary, "add_commands").parse_args(
        ["summary", "crossinfonet", "--variant", "huge"])
    with pytest.raises(UsageError, match="--variant"):
        args.func(args)
    from handlib import infer_cli

    args = _parser(infer_cli, "add_bench").parse_args(["infer", "crossinfonet", "--repeats", "0"])
    with pytest.raises(UsageError, match="--repeats"):
        args.func(args)


def test_benchmark_reports_fps_and_roofline_fraction():
    result = bench.benchmark_inference("crossinfonet", batch_sizes=(1, 2), repeats=1,
                                       device=torch.device("cpu"), matmul_size=256)
    assert {"model", "variant", "dataset", "device", "cpu", "precision", "fused_bn", "channels_last", "compiled", "flops_per_frame",
            "image_size", "frames_per_sample", "frames_b1", "frames_b2",
            "peak_flops_per_s", "peak_kernel", "kernel_flops_per_s", "profile", "fps_b1", "fps_b1_median", "fps_b2", "fps_b2_median",
            "roofline_fraction_b1", "roofline_fraction_b2"} == set(result)
    assert result["image_size"] == 96 and result["frames_b2"] == 2
    for key in ("fps_b1", "fps_b2"):
        assert 0 < result[f"{key}_median"] <= result[key] < 1e5, key
    for key in ("roofline_fraction_b1", "roofline_fraction_b2"):     # achieved ÷ peak FLOP rate
        assert 0 < result[key] < 1.5, key
        batch = int(key[-1])
        assert result[key] == pytest.approx(result[f"fps_b{batch}"] * result["flops_per_frame"]
                                            / result["peak_flops_per_s"])
    assert result["flops_per_frame"] == pytest.approx(0.684e9, rel=0.01)
