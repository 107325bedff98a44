"""Liu, Huang, Ye (handlib.models.liu) and its shared blocks: SE block, SE-ResBlock, hourglass, targets,
decoding, the two stages."""
from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import default_collate

from handlib.losses import gaussian_heatmap_targets
from handlib.models import liu as L
from handlib.models.blocks import Hourglass, SEBlock, SEResBlock
from handlib.models.registry import get_model_spec


def test_se_block_gates_channels_as_computed_by_hand():
    se = SEBlock(2, reduction=2)                  # 2 -> 1 -> 2
    with torch.no_grad():
        se.squeeze.weight.fill_(1.0)
        se.squeeze.bias.zero_()
        se.excite.weight.copy_(torch.tensor([[1.0], [-1.0]]).reshape(2, 1, 1, 1))
        se.excite.bias.zero_()
    x = torch.zeros(1, 2, 2, 2)
    x[0, 0] = 1.0                                 # channel means 1 and 3
    x[0, 1] = 3.0
    # squeeze: relu(1 + 3) = 4; excite: (4, -4); gates: sigmoid(4), sigmoid(-4)
    out = se(x)
    assert torch.allclose(out[0, 0], torch.full((2, 2), 1.0 / (1 + math.exp(-4))))
    assert torch.allclose(out[0, 1], torch.full((2, 2), 3.0 / (1 + math.exp(4))))


def test_se_resblock_shortcut_and_shapes():
    block = SEResBlock(8, 8).eval()
    assert block.projection is None
    with torch.no_grad():                         # zero residual branch: output = relu(shortcut)
        block.conv2.bn.weight.zero_()
        block.conv2.bn.bias.zero_()
    x = torch.randn(2, 8, 6, 6)
    assert torch.allclose(block(x), torch.relu(x))
    strided = SEResBlock(8, 16, stride=2)
    assert strided.projection is not None and strided(x).shape == (2, 16, 3, 3)


class Identity2(torch.nn.Module):
    """A block that returns its input (the hourglass's arithmetic then shows by hand)."""

    def __init__(self, *args):
        super().__init__()

    def forward(self, x):
        return x


def test_hourglass_recursion_by_hand():
    # With identity blocks a depth-1 hourglass is x + upsample(maxpool(x)).
    hg = Hourglass(1, 1, block=Identity2)
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    assert torch.equal(hg(x), x + 4.0)
    hg2 = Hourglass(2, 1, block=Identity2)        # x + up(p1 + up(p2)), p1 = pool(x), p2 = pool(p1)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    p1 = torch.nn.functional.max_pool2d(x, 2)
    inner = p1 + torch.nn.functional.interpolate(torch.nn.functional.max_pool2d(p1, 2), scale_factor=2.0)
    assert torch.equal(hg2(x), x + torch.nn.functional.interpolate(inner, scale_factor=2.0))
    assert Hourglass(4, 8).resolutions(64) == [64, 32, 16, 8, 4]
    with pytest.raises(ValueError, match="divisible"):
        Hourglass(4, 8)(torch.zeros(1, 8, 24, 24))


def test_heatmap_target_peaks_at_the_joint():
    joints = torch.tensor([[[20.0, 40.0, 0.1], [63.0, 0.0, 0.0]]])       # crop pixels, 128 crop
    maps = gaussian_heatmap_targets(joints, 128, 64)
    assert maps.shape == (1, 2, 64, 64)
    # crop pixel 20 sits at cell (20 + 0.5) / 2 - 0.5 = 9.75: the peak cell is 10 (u), 19.75 -> 20 (v)
    peak = maps[0, 0].flatten().argmax()
    assert (int(peak // 64), int(peak % 64)) == (20, 10)
    assert float(maps[0, 0].max()) == pytest.approx(math.exp(-2 * 0.25 ** 2 / 2), rel=1e-5)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1


@pytest.mark.parametrize("size,grid", [(128, 64), (64, 32)])
def test_decoding_round_trips_targets_within_a_quarter_cell(size, grid):
    generator = torch.Generator().manual_seed(0)
    joints = torch.rand(64, 14, 3, generator=generator) * (size - 8) + 4
    decoded = L.decode_heatmaps(gaussian_heatmap_targets(joints, size, grid), size)
    cell = size / grid
    error_cells = (decoded - joints[..., :2]).abs() / cell
    assert float(error_cells.max()) <= 0.25 + 1e-4
    # argmax alone would be off by up to half a cell: the quarter shift helps on average
    argmax_only = ((gaussian_heatmap_targets(joints, size, grid).flatten(2).argmax(-1) % grid + 0.5) * cell - 0.5)
    assert float(error_cells[..., 0].mean()) < float(((argmax_only - joints[..., 0]).abs() / cell).mean())


def test_pose_network_shapes_at_the_papers_size():
    net = L.build("attention", image_size=128).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 128, 128) * 2 - 1, return_features=True)
    f = out["features"]
    assert f["shallow"].shape == (1, 128, 64, 64)
    assert [t.shape for t in f["stack_features"]] == [(1, 128, 64, 64)] * 2
    assert f["mask"].shape == (1, 128, 64, 64) and 0 < float(f["mask"].min()) < float(f["mask"].max()) < 1
    assert out["heatmaps"].shape == (1, 2, 14, 64, 64) and out["depth"].shape == (1, 14)
    assert net.regressor.out.in_features == 2048                  # 128 x 4 x 4, as §2.2 choice 5
    assert 10.0e6 < sum(p.numel() for p in net.parameters()) < 10.4e6    # the spec's 10.2 M


def test_pose_network_shapes_at_the_book_size():
    from handlib.profiles import get_profile

    book = get_profile("book", "liu")
    net = get_model_spec("liu").build_for("attention", "nyu", book).eval()
    s = book.image_size
    with torch.no_grad():
        out = net(torch.zeros(1, 1, s, s), return_features=True)
    w, h = book.extra["width"], s // 2
    assert out["features"]["shallow"].shape == (1, w, h, h) and out["heatmaps"].shape == (1, 2, 14, h, h)
    assert net.hourglasses[0].resolutions(h)[-1] == h >> 4
    assert net.regressor.out.in_features == w * (h >> 4) ** 2 and out["depth"].shape == (1, 14)
    assert torch.equal(out["heatmaps"], torch.zeros_like(out["heatmaps"]))     # heat-map outputs start at 0


def test_variants_read_what_the_ablation_says():
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    nets = {v: L.build(v, image_size=64, width=16).eval() for v in L.POSE_VARIANTS}
    with torch.no_grad():
        outs = {v: n(x, return_features=True) for v, n in nets.items()}
    f = outs["two_branch"]["features"]
    assert torch.equal(f["regressor_input"], f["shallow"])
    f = outs["direct"]["features"]
    assert torch.equal(f["regressor_input"], f["stack_features"][-1])
    f = outs["attention"]["features"]
    assert torch.allclose(f["stack_features"][-1], torch.relu(f["pre_activation"]))
    assert torch.allclose(f["regressor_input"], torch.sigmoid(f["pre_activation"]) * f["shallow"])
    assert float(f["mask"].min()) < 0.5 < float(f["mask"].max())   # σ of pre-ReLU features spans (0, 1)
    soft = outs["attention_softmax"]["features"]["mask"]
    assert torch.allclose(soft.sum((-2, -1)), torch.ones(2, 16), atol=1e-4)
    minmax = outs["attention_minmax"]["features"]["mask"]
    last = outs["attention_minmax"]["features"]["pre_activation"]
    varying = last.amax((-2, -1)) > last.amin((-2, -1))
    assert float(minmax.amin((-2, -1)).max()) == 0.0 and varying.any()
    assert torch.allclose(minmax.amax((-2, -1))[varying], torch.ones(int(varying.sum())))
    assert outs["plain"]["joints"].shape == (2, 14, 3) and "heatmaps" not in outs["plain"]


def test_paired_init_shares_the_common_layers():
    torch.manual_seed(3)
    a = L.build("attention", image_size=64, width=16)
    torch.manual_seed(3)
    b = L.build("plain", image_size=64, width=16)         # another module tree: only shallow.* is shared
    sa, sb = a.state_dict(), b.state_dict()
    shared = [k for k in sb if k.startswith("shallow.")]
    assert shared and all(torch.equal(sa[k], sb[k]) for k in shared)
    assert not torch.equal(sa["regressor.out.bias"][:14], sb["regressor.out.bias"][:14])
    torch.manual_seed(4)
    c = L.build("attention", image_size=64, width=16)
    assert not torch.equal(sa["shallow.0.conv.weight"], c.state_dict()["shallow.0.conv.weight"])


@pytest.fixture(scope="module")
def batch():
    from handlib.synth.dataset import SyntheticHands

    frames = SyntheticHands("liu-tests", 8, size=64, convention="nyu", seed=0, progress=False)
    return default_collate([frames[i] for i in range(len(frames))])


def test_back_projection_of_true_2_5d_recovers_the_joints(batch):
    net = L.build("attention", image_size=64, width=16)
    xyz = L.joints_from_2d(batch["joints_crop"][..., :2], batch["joints_crop"][..., 2], batch, net.camera)
    assert torch.allclose(xyz.float(), batch["joints_xyz"], atol=0.05)


def test_com_crop_and_recentre_keep_labels_consistent(batch):
    camera = L.build("handloc", image_size=64).camera
    first = L.com_crop(batch, camera)
    moved = (first["com"] - batch["com"]).norm(dim=-1)
    assert float(moved.min()) > 0                         # the pixels' CoM is not the label's centre
    assert torch.equal(first["reference_com"], batch["com"])
    assert torch.allclose(first["joints_xyz"], batch["joints_xyz"], atol=1e-3)
    back = L.recentre(first, camera, batch["com"].double())
    assert torch.equal(back["reference_com"], batch["com"])      # the first reference is kept
    # DeepPrior's crop box rounds to whole pixels, the renderer's window does not: within a pixel
    assert float((back["joints_crop"][..., :2] - batch["joints_crop"][..., :2]).abs().max()) < 1.0
    assert torch.allclose(back["joints_crop"][..., 2], batch["joints_crop"][..., 2], atol=1e-4)


class Constant(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return self.value


def test_stage1_perfect_offset_scores_zero(batch):
    loc = L.build("handloc", image_size=64)
    first = L.com_crop(batch, loc.camera)
    target = (L.hand_centre(batch) - first["com"].double()) / (first["cube"].double() / 2)
    loc.offset = Constant(target.float())
    assert float(L.loss(L.forward(loc, batch), batch)["total"]) < 1e-10
    loc.eval()
    with torch.no_grad():
        out = L.forward(loc, batch)
    assert float((out["centre"] - L.hand_centre(batch)).norm(dim=-1).max()) < 1e-3
    # scored as the labelled hand placed at its centre: each joint's error is the centre's error (here 0)
    xyz = L.denormalize_joints(out["joints_norm"].double(), batch["com"].double(), batch["cube"].double())
    assert float((xyz - batch["joints_xyz"].double()).norm(dim=-1).max()) < 1e-2
    loc.offset = Constant(torch.full_like(target, 0.1).float())           # 0.1 half-cubes off in x, y, z
    with torch.no_grad():
        out = L.forward(loc, batch)
    xyz = L.denormalize_joints(out["joints_norm"].double(), batch["com"].double(), batch["cube"].double())
    centre_error = (out["centre"] - L.hand_centre(batch)).norm(dim=-1)
    assert float(centre_error.min()) > 1.0
    assert torch.allclose((xyz - batch["joints_xyz"].double()).norm(dim=-1), centre_error.unsqueeze(1).expand(-1, 14),
                          atol=1e-3)


def test_predictions_do_not_read_labels(batch):
    torch.manual_seed(0)
    loc = L.build("handloc", image_size=64).eval()
    net = L.build("attention", image_size=64, width=16).eval()
    moved = dict(batch)
    for key in ("joints", "joints_xyz", "joints_uvd", "joints_crop"):
        moved[key] = batch[key] + 5.0
    with torch.no_grad():
        a, b = L.refine_crop(loc, batch), L.refine_crop(loc, moved)
        assert torch.equal(a["depth"], b["depth"]) and torch.equal(a["com"], b["com"])
        pa, pb = L.forward(net, a)["joints_norm"], L.forward(net, b)["joints_norm"]
    assert torch.equal(pa, pb)


def test_staged_forward_under_bf16_autocast(batch):
    torch.manual_seed(0)
    loc = L.build("handloc", image_size=64).eval()
    net = L.build("attention", image_size=64, width=16).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        offset = loc(L.com_crop(batch, loc.camera)["depth"])["offset"]
        out = L.forward(net, L.refine_crop(loc, batch))
    assert offset.dtype == torch.float32
    assert out["joints_norm"].shape == (8, 14, 3) and torch.isfinite(out["joints_norm"]).all()


@pytest.mark.parametrize("variant", L.POSE_VARIANTS)
def test_each_variant_forward_backward(batch, variant):
    net = L.build(variant, image_size=64, width=16)
    out = L.forward(net, batch)
    terms = L.loss(out, batch)
    terms["total"].backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    assert "joints_norm" not in out and torch.isfinite(terms["total"])     # training: no decoding
    net.eval()
    with torch.no_grad():
        assert L.forward(net, batch)["joints_norm"].shape == (8, 14, 3)
    expected = {"L_reg", "total"} if variant == "plain" else {"L_det1", "L_det2", "L_reg", "total"}
    assert set(terms) == expected


def _depth_loss_gradients(variant, batch):
    """The gradient of L_reg alone with respect to every parameter (None where L_reg does not reach it)."""
    torch.manual_seed(0)
    net = L.build(variant, image_size=64, width=16)
    params = dict(net.named_parameters())
    grads = torch.autograd.grad(L.loss(L.forward(net, batch), batch)["L_reg"], list(params.values()),
                                allow_unused=True)
    return {name: g for name, g in zip(params, grads)}


def test_detached_mask_keeps_the_depth_loss_out_of_the_hourglasses(batch):
    detector = ("hourglasses.", "heads.", "merge_features.", "merge_heatmaps.")
    for variant, reaches in (("attention_detached", False), ("attention", True)):
        grads = _depth_loss_gradients(variant, batch)
        hourglass = {n: g for n, g in grads.items() if n.startswith("hourglasses.")}
        assert hourglass
        size = sum(float(g.abs().sum()) for g in hourglass.values() if g is not None)
        if reaches:                          # the paper's attention: L_reg trains the hourglasses
            assert size > 0
        else:                                # the probe: no detector parameter hears L_reg
            assert size == 0.0
            assert all(g is None or float(g.abs().sum()) == 0.0 for n, g in grads.items() if n.startswith(detector))
        # both still train the shallow layers and the regressor through M ⊙ F_raw
        for prefix in ("shallow.", "regressor."):
            assert sum(float(g.abs().sum()) for n, g in grads.items() if n.startswith(prefix) and g is not None) > 0


def test_a_few_steps_lower_the_loss(batch):
    torch.manual_seed(0)
    net = L.build("attention", image_size=64, width=16)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)     # the book setting
    losses = []
    for _ in range(8):
        terms = L.loss(L.forward(net, batch), batch)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        losses.append(float(terms["total"].detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_spec_stages_and_profiles():
    spec = get_model_spec("liu")
    assert spec.for_variant("handloc").upstreams == ()
    for v in L.POSE_VARIANTS:
        (up,) = spec.for_variant(v).upstreams
        assert (up.model, up.variant, up.attach) == ("liu", "handloc", L.refine_crop)
    from handlib.profiles import get_profile

    book = get_profile("book", "liu")
    assert (book.image_size, book.extra["width"]) == (64, 32)
    full = get_profile("full", "liu")
    assert (full.image_size, full.extra["width"]) == (128, 128)


def test_two_stage_run_loads_a_frozen_stage1(tmp_path):
    from handlib.runs import train_and_record

    kwargs = dict(profile="smoke", seed=0, runs_root=tmp_path, results_dir=tmp_path / "results", progress=False)
    train_and_record("liu", variant="handloc", **kwargs)
    record, _, net = train_and_record("liu", variant="attention", **kwargs)
    assert record["stage"] == "liu-handloc" and math.isfinite(record["test"]["mean_error_mm"])
    with pytest.raises(Exception, match="handloc"):
        train_and_record("liu", variant="direct", **{**kwargs, "runs_root": tmp_path / "empty"})
    from handlib.runs import load_upstream

    (stage1,) = load_upstream(get_model_spec("liu").for_variant("attention"), "synthetic", "smoke", 0, "nyu", 64,
                              tmp_path)
    assert not stage1.training and not any(p.requires_grad for p in stage1.parameters())


def test_summary_matches_the_specs_sketch():
    from handlib.models.summary import summarize

    paper = summarize("liu")                       # attention network, the paper's 128 x 128 input
    assert paper["image_size"] == 128
    assert abs(paper["params"] / 10.2e6 - 1) < 0.01          # specs/architectures.md §0: 10.2 M
    assert abs(paper["flops_inference"] / 2 / 10.0e9 - 1) < 0.01   # 10.0 GMAC per frame
    locator = summarize("liu", "handloc")
    assert locator["params"] < 0.1 * paper["params"]
