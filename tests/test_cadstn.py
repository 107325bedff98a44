"""CADSTN's networks (handlib.models.cadstn) against the released prototxts' facts."""
from __future__ import annotations

import pytest
import torch

from handlib.data.crop import foreground_mask
from handlib.models import cadstn as C
from handlib.models.registry import get_model_spec
from handlib.train import build_optimizer, parameter_groups, set_lr


def crop(values) -> torch.Tensor:
    """A (1, 1, H, W) normalised crop from a nested list (1.0 = background)."""
    return torch.tensor(values, dtype=torch.float32)[None, None]


def test_slicing_bins_hand_pixels_as_the_code_does():
    # Hand depths -0.8 (D_min) .. 0.8 (D_max), bin width 0.2: -0.8 -> 0, -0.59 -> 1, 0.0 -> 4, 0.79 -> 7,
    # 0.8 (= D_max) -> the last bin, not a ninth; background (+1) is in no slice.
    depth = crop([[-0.8, -0.59, 1.0],
                  [0.0, 0.79, 0.8],
                  [1.0, 1.0, 1.0]])
    volume = C.slice_volume(depth)
    assert volume.shape == (1, 8, 3, 3) and volume.dtype == torch.float32
    expected_bin = {(0, 0): 0, (0, 1): 1, (1, 0): 4, (1, 1): 7, (1, 2): 7}
    for (r, c), b in expected_bin.items():
        assert volume[0, :, r, c].tolist() == [1.0 if k == b else 0.0 for k in range(8)], (r, c)
    background = depth[0, 0] == 1.0
    assert volume[0][:, background].sum() == 0
    assert torch.equal(volume.sum(1)[0], (~background).float())       # one slice per hand pixel


def test_rendered_background_is_in_no_slice():
    from handlib.synth.dataset import SyntheticHands

    depth = SyntheticHands("slices", 4, size=64, progress=False)[0]["depth"]
    background = depth[0] > 0.999                        # +1 up to float rounding
    assert 0 < int(background.sum()) < depth.numel()
    volume = C.slice_volume(depth[None])[0]
    assert volume[:, background].sum() == 0 and torch.equal(volume.sum(0), (~background).float())
    assert all(volume[level].sum() > 0 for level in (0, 7))        # D_min and D_max are hand pixels


def test_slicing_works_on_clips_and_a_single_depth():
    clips = torch.ones(2, 3, 1, 16, 16)
    clips[:, :, :, 4:8, 4:8] = 0.25                          # one depth only: all in the first slice
    volume = C.slice_volume(clips)
    assert volume.shape == (2, 3, 8, 16, 16)
    assert volume[:, :, 0].sum() == 2 * 3 * 16 and volume[:, :, 1:].sum() == 0
    with pytest.raises(ValueError, match="shape"):
        C.slice_volume(torch.zeros(2, 3, 16, 16))


@pytest.fixture(scope="module")
def frames():
    torch.manual_seed(0)
    depth = torch.ones(2, 1, 128, 128)
    depth[:, :, 32:96, 40:90] = torch.rand(2, 1, 64, 50) * 1.6 - 0.8
    return depth


def test_trunk_shapes_at_every_stage(frames):
    trunk = C.Trunk(1)
    x, sizes = frames, []
    for stage in trunk.stages:
        x = stage(x)
        sizes.append(tuple(x.shape[1:]))
    assert sizes == [(32, 32, 32), (64, 16, 16), (128, 8, 8)]
    assert C.feature_size(128) == 8192 and C.feature_size(96) == 128 * 36
    sliced = C.Trunk(8, sliced=True)
    first = sliced.stages[0]
    assert [type(m).__name__ for m in first] == ["Conv2d", "Conv2d", "ReLU", "MaxPool2d"]   # no ReLU between
    assert first[1].kernel_size == (1, 1) and sliced(C.slice_volume(frames)).shape == (2, 8192)
    with pytest.raises(ValueError, match="multiple of 16"):
        C.feature_size(100)


def test_parameter_counts_match_the_prototxts():
    counts = {v: sum(p.numel() for p in C.build(v).parameters()) for v in C.VARIANTS}
    assert counts["baseline"] == 9_574_954           # the spec's 9.58 M
    assert counts["sliced3d"] == 9_598_698           # 9.60 M
    aux = 2 * (1024 * 42 + 42)                       # the auxiliary outputs: 86k, training only
    assert counts["spatial"] - aux == 19_130_602     # 19.13 M (test graph)
    lstm_extra_bias = 4 * 1024                       # PyTorch's second LSTM bias, held at 0
    assert counts["temporal"] - lstm_extra_bias == 16_961_066   # 16.97 M
    assert counts["cadstn"] - aux - lstm_extra_bias == 19_130_602 + 16_961_066 + 9_574_954  # 45.67 M


def test_forward_shapes_and_auxiliary_paths(frames):
    spatial = C.Spatial().eval()
    train_out = spatial(frames)
    assert set(train_out) == {"joints", "aux_depth", "aux_volume"}
    assert all(v.shape == (2, 14, 3) for v in train_out.values())
    test_out = get_model_spec("cadstn").for_variant("spatial").inference_forward(spatial, {"depth": frames})
    assert set(test_out) == {"joints"}                                 # absent at test
    assert torch.equal(test_out["joints"], train_out["joints"])       # eval: same main path
    assert C.Baseline(convention="icvl")(frames)["joints"].shape == (2, 16, 3)


def test_spatial_auxiliary_paths_share_the_fc_weights(frames):
    spatial = C.Spatial()
    names = [n for n, _ in spatial.named_parameters()]
    assert not any("aux" in n and "fc" in n for n in names)          # one FC1 / FC2 tensor, used twice
    spatial.zero_grad()
    out = spatial(frames)
    out["aux_depth"].sum().backward()                                 # only the depth auxiliary path
    assert spatial.fc1.weight.grad is not None and spatial.fc1.weight.grad.abs().sum() > 0
    assert spatial.fc1_3d.weight.grad is None or spatial.fc1_3d.weight.grad.abs().sum() == 0


def test_lstm_state_is_reset_per_clip():
    torch.manual_seed(1)
    first, second, other = (torch.rand(1, 16, 1, 64, 64) * 2 - 1 for _ in range(3))
    temporal = C.Temporal(image_size=64).eval()
    alone = temporal(second)["joints"]
    after_first = temporal(torch.cat([first, second]))["joints"][1]
    after_other = temporal(torch.cat([other, second]))["joints"][1]
    assert torch.allclose(alone[0], after_first, atol=1e-6) and torch.allclose(after_first, after_other, atol=1e-6)
    # ... while within a clip the past matters: the last frame depends on the first.
    changed = second.clone()
    changed[:, 0] = -changed[:, 0]
    assert not torch.allclose(temporal(changed)["joints"][0, -1], alone[0, -1])


def test_frozen_stages_get_no_gradient_and_stay_bit_identical():
    torch.manual_seed(2)
    fusion = C.Fusion(image_size=64)
    frozen = {k: v.clone() for k, v in fusion.state_dict().items() if not k.startswith("gate.")}
    optimizer = build_optimizer(fusion, get_model_spec("cadstn").for_variant("cadstn").recipe)
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in fusion.gate.parameters()}
    fusion.train()
    assert not fusion.spatial.training and not fusion.temporal.training and fusion.gate.training
    clips = torch.rand(2, 16, 1, 64, 64) * 2 - 1
    for _ in range(3):
        optimizer.zero_grad()
        C.loss(fusion(clips), {"joints": torch.zeros(2, 16, 14, 3)})["total"].backward()
        optimizer.step()
    assert all(p.grad is None for n, p in fusion.named_parameters() if not n.startswith("gate."))
    after = fusion.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)
    assert any(not torch.equal(a, b) for a, b in zip(C.Fusion(image_size=64).gate.parameters(),
                                                     fusion.gate.parameters()))


def test_temporal_trunk_is_frozen_and_loads_the_baseline():
    baseline, temporal = C.Baseline(image_size=64), C.Temporal(image_size=64)
    C.embed_baseline(temporal, baseline)
    assert torch.equal(temporal.fc1.weight, baseline.fc1.weight)
    assert not any(p.requires_grad for p in temporal.trunk.parameters())
    assert not temporal.fc1.weight.requires_grad and not temporal.lstm.bias_hh_l0.requires_grad
    assert temporal.lstm.weight_hh_l0.abs().max() <= C.LSTM_RANGE


def test_fusion_is_the_gated_sum_and_fixed_mix_the_formula():
    torch.manual_seed(3)
    fusion = C.Fusion(image_size=64).eval()
    out = fusion(torch.rand(1, 16, 1, 64, 64) * 2 - 1)
    w = out["w_temporal"]
    assert ((w > 0) & (w < 1)).all()
    assert torch.allclose(out["joints"], w * out["temporal"] + (1 - w) * out["spatial"])
    a, b = torch.randn(4, 14, 3), torch.randn(4, 14, 3)
    for w in (0.0, 0.1, 0.5, 0.9, 1.0):
        assert torch.allclose(C.fixed_mix(a, b, w), w * a + (1 - w) * b)
    assert torch.equal(C.fixed_mix(a, b, 1.0), a) and torch.equal(C.fixed_mix(a, b, 0.0), b)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        C.fixed_mix(a, b, 1.5)


def test_caffe_fillers_and_multipliers():
    baseline = C.Baseline(image_size=64)
    conv = baseline.trunk.stages[1][0]
    bound = (3 / (32 * 9)) ** 0.5                      # Caffe xavier: U(±sqrt(3 / fan_in))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert baseline.out.weight.std() < 0.002 and baseline.fc1.bias.abs().sum() == 0
    sliced = C.Baseline(image_size=64, sliced=True).multipliers()
    assert sliced["trunk.stages.0.1.bias"] == (2.0, 0.0) and sliced["trunk.stages.0.1.weight"] == (1.0, 1.0)
    assert sliced["fc1.bias"] == (1.0, 1.0)
    temporal = C.Temporal(image_size=64).multipliers()
    assert temporal["lstm.weight_ih_l0"] == (10.0, 1.0) and temporal["lstm.weight_hh_l0"] == (1.0, 1.0)
    assert temporal["out.bias"] == (2.0, 0.0) and "fc1.weight" not in temporal    # frozen: not trained


def test_optimizer_groups_follow_the_multipliers():
    temporal = C.Temporal(image_size=64)
    recipe = C.TEMPORAL_RECIPE
    groups = parameter_groups(temporal, recipe)
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert by_param[id(temporal.lstm.weight_ih_l0)]["lr_mult"] == 10.0
    assert by_param[id(temporal.out.bias)]["weight_decay"] == 0.0
    assert by_param[id(temporal.out.weight)]["weight_decay"] == recipe.weight_decay
    optimizer = build_optimizer(temporal, recipe)
    set_lr(optimizer, 1e-4)
    lrs = {g["lr_mult"]: g["lr"] for g in optimizer.param_groups}
    assert lrs[10.0] == pytest.approx(1e-3) and lrs[2.0] == pytest.approx(2e-4) and lrs[1.0] == pytest.approx(1e-4)


def test_spec_variants_and_stages():
    spec = get_model_spec("cadstn")
    assert list(spec.variants) == ["sliced3d", "baseline", "temporal", "spatial", "cadstn"]
    assert spec.default_variant == "cadstn"
    temporal, fusion = spec.for_variant("temporal"), spec.for_variant("cadstn")
    assert temporal.input_kind == "clip" and temporal.data == "clips" and temporal.recipe.lr == 1e-4
    assert [u.key() for u in temporal.upstreams] == ["cadstn-baseline"]
    assert [u.key() for u in fusion.upstreams] == ["cadstn-spatial", "cadstn-temporal"]
    assert spec.for_variant("baseline").data == "clip_frames" and spec.for_variant("baseline").input_kind == "frame"
    from handlib.experiments import stage_depths
    assert stage_depths(spec, tuple(spec.variants)) == {"sliced3d": 0, "baseline": 0, "spatial": 0,
                                                         "temporal": 1, "cadstn": 2}
    assert stage_depths(spec, ("temporal", "cadstn")) == {"temporal": 0, "cadstn": 1}
    # A variant's spec derives its siblings from the registered one (a grid holds the default's).
    assert fusion.for_variant("spatial").upstreams == () and fusion.for_variant("cadstn").upstreams == fusion.upstreams
    assert stage_depths(fusion, tuple(spec.variants))["cadstn"] == 2


def test_every_variant_is_tested_on_the_same_frames():
    from handlib.profiles import get_profile
    for profile in ("smoke", "book", "full"):
        tests = {get_profile(profile, "cadstn", v).test_frames for v in C.VARIANTS}
        sizes = {get_profile(profile, "cadstn", v).image_size for v in C.VARIANTS}
        assert len(tests) == 1 and sizes == {128}, profile


def test_loss_clips_targets_and_averages_over_frames():
    pred = torch.zeros(2, 3, 14, 3)
    target = torch.zeros(2, 3, 14, 3)
    target[..., 0] = 3.0                              # clipped to 1: ½ · 14 per frame
    assert C.loss({"joints": pred}, {"joints": target})["total"].item() == pytest.approx(7.0)
    terms = C.loss({"joints": pred[:, 0], "aux_depth": pred[:, 0], "aux_volume": pred[:, 0]},
                   {"joints": target[:, 0]})
    assert set(terms) == {"joints", "aux_depth", "aux_volume", "total"}
    assert terms["total"].item() == pytest.approx(21.0)


def test_summary_counts_per_frame_and_per_clip_beside_the_spec():
    from handlib.models.summary import summarize

    full = summarize("cadstn")                                  # the default variant: the whole CADSTN
    assert full["variant"] == "cadstn" and full["image_size"] == 128 and full["frames_per_sample"] == 16
    assert full["params_inference"] == pytest.approx(45.67e6, rel=0.001)     # aux heads not in it
    assert full["params_trainable"] == 9_574_954                             # the gate alone
    lstm_macs = 4 * 1024 * (1024 + 1024)                        # per frame; the spec's sketch missed them
    assert full["flops_per_frame"] // 2 - lstm_macs == pytest.approx(265e6, rel=0.01)
    assert full["flops_inference"] == 16 * full["flops_per_frame"]
    spatial = summarize("cadstn", "spatial")
    assert spatial["flops_inference"] // 2 == pytest.approx(162e6, rel=0.01) and spatial["flops"] > spatial["flops_inference"]
    assert summarize("cadstn", "baseline")["macs"] == pytest.approx(51.9e6, rel=0.01)


def test_bench_runs_whole_clips():
    from handlib.models import bench

    result = bench.benchmark_inference("cadstn", "temporal", batch_sizes=(1, 20), repeats=1,
                                       device=torch.device("cpu"), matmul_size=256, image_size=64)
    assert result["frames_b1"] == 16 and result["frames_b20"] == 32        # 1 clip, 2 clips
    assert result["roofline_fraction_b20"] == pytest.approx(
        result["fps_b20"] * result["flops_per_frame"] / result["peak_flops_per_s"])


def test_bench_train_counts_clips_and_the_lstm():
    from handlib.train_cli import bench_train

    figures = bench_train("cadstn", variant="temporal", profile="smoke", steps=1, batch_size=1, device="cpu")
    assert figures["frames_per_sample"] == 16
    assert figures["frames_per_s"] == pytest.approx(16 * figures["samples_per_s"])
    lstm = 3 * 2 * 16 * 4 * 1024 * (1024 + 1024)          # forward + backward of the trained LSTM, one clip
    frozen_trunk = 16 * 2 * 50.9e6                         # forward only: no gradient into it
    assert figures["train_flops_per_sample"] == pytest.approx(lstm + frozen_trunk, rel=0.05)


def test_augmentation_is_one_rotated_copy_per_frame():
    from torch.utils.data import default_collate

    from handlib.synth.dataset import SyntheticHands

    angles = C.copy_rotation(torch.arange(300))
    assert set(angles.tolist()) == {90.0, 180.0, 270.0} and torch.equal(angles, C.copy_rotation(torch.arange(300)))
    assert C.training_augmentation("synthetic") is None
    assert get_model_spec("cadstn").for_variant("temporal").augmentation is None       # clips never
    frames = SyntheticHands("augment", 16, size=32, progress=False)                      # NYU intrinsics
    batch = default_collate([frames[i] for i in range(16)])
    torch.manual_seed(0)
    out = C.training_augmentation("nyu")(batch)
    torch.manual_seed(0)
    use_copy = torch.rand(16) < 0.5
    assert 0 < int(use_copy.sum()) < 16
    for i in range(16):
        if not use_copy[i]:            # the original frame, untouched
            assert torch.allclose(out["joints"][i], batch["joints"][i], atol=1e-5)
            continue
        angle = torch.deg2rad(C.copy_rotation(torch.tensor(i)).double())
        c, s = torch.cos(angle), torch.sin(angle)
        uv = batch["joints_crop"][i, :, :2].double() - 16.0          # about the crop centre (w / 2)
        turned = torch.stack((c * uv[:, 0] - s * uv[:, 1], s * uv[:, 0] + c * uv[:, 1]), -1) + 16.0
        assert torch.allclose(out["joints_crop"][i, :, :2].double(), turned, atol=1e-3)
        # The image turned with the labels: a quarter / half turn of the hand's pixels.
        hand_before = int(foreground_mask(batch["depth"][i]).sum())
        assert 0 < hand_before < 32 * 32
        assert abs(int(foreground_mask(out["depth"][i]).sum()) - hand_before) <= 0.1 * hand_before


def test_temporal_loss_divides_by_time_only_as_caffe():
    pred = torch.zeros(4, 16, 14, 3)
    target = torch.zeros(4, 16, 14, 3)
    target[..., 0] = 0.5                                 # ½ · 14 · 0.25 = 1.75 per frame
    per_frame = C.loss({"joints": pred}, {"joints": target})["total"]
    caffe = C.temporal_loss({"joints": pred}, {"joints": target})["total"]
    assert per_frame.item() == pytest.approx(1.75) and caffe.item() == pytest.approx(4 * 1.75)   # x clips
    assert get_model_spec("cadstn").for_variant("temporal").loss is C.temporal_loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lstm_flops_are_counted_once(dtype):
    from torch import nn

    from handlib.models.summary import count_flops

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 16, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0]

    net = Recurrent().to(dtype)
    flops = count_flops(net, {"depth": torch.randn(2, 5, 8, dtype=dtype)}, lambda m, b: m(b["depth"]))
    assert flops == 2 * 5 * 4 * 16 * (8 + 16)          # per sample: 5 steps, whichever kernel ran


def test_multiplier_tables_follow_the_prototxts():
    non_default = lambda table: {k: v for k, v in table.items() if v != (1.0, 1.0)}
    spatial = non_default(C.Spatial(image_size=64).multipliers())
    assert spatial == {f"{layer}.bias": (2.0, 1.0) for layer in
                       ("fc1", "fc1_3d", "fc2", "fc2_3d", "out", "aux_out_depth", "aux_out_volume")}
    fusion = C.Fusion(image_size=64).multipliers()
    assert set(fusion) == {n for n, _ in C.Fusion(image_size=64).gate.named_parameters(prefix="gate")}
    assert non_default(fusion) == {"gate.fc1.bias": (2.0, 1.0), "gate.fc2.bias": (2.0, 1.0)}
    assert non_default(C.Baseline(image_size=64).multipliers()) == {}
    assert non_default(C.Temporal(image_size=64).multipliers()) == {"lstm.weight_ih_l0": (10.0, 1.0),
                                                                     "out.bias": (2.0, 0.0)}


def test_a_staged_grid_refuses_per_call_overrides():
    from handlib import experiments

    with pytest.raises(ValueError, match="epochs cannot be overridden"):
        experiments.run_grid("cadstn", profile="smoke", epochs=2, progress=False)
