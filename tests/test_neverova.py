"""Neverova et al.'s networks (handlib.models.neverova): dense pooling = shift-and-stitch, LCN, masks,
each variant's forward and backward, and the weak mix that must never train on a real-like frame's labels."""
import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from handlib.models import neverova as nv
from handlib.models.registry import get_model_spec


def _crop(batch=2, size=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=g, dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("setting", sorted(nv.SEG_SETTINGS))
def test_dilated_network_equals_shift_and_stitch(setting):
    torch.manual_seed(0)
    net = nv.build_seg("synthetic", seg_size=setting).double()
    net.eval()
    x = _crop()
    with torch.no_grad():
        dense = net(x)["log_probs"].double()
        stitched = torch.log_softmax(nv.shift_and_stitch(net, x), dim=1)
    assert dense.shape == (2, nv.NUM_PARTS, nv.SEG_SETTINGS[setting], nv.SEG_SETTINGS[setting])
    # the dense graph's log-softmax runs in float32
    assert torch.allclose(dense, stitched, atol=1e-5), (dense - stitched).abs().max()


def test_shift_and_stitch_differs_without_joint_statistics():
    """The check has teeth: normalising each shifted map on its own is not the dense network."""
    torch.manual_seed(0)
    net = nv.SegNet(48).double()
    x = _crop(1)
    original = nv._joint_norm
    try:
        nv._joint_norm = lambda maps, norm: {k: torch.relu(norm(m)) for k, m in maps.items()}
        stitched = torch.log_softmax(nv.shift_and_stitch(net, x), dim=1)
    finally:
        nv._joint_norm = original
    assert (net(x)["log_probs"].double() - stitched).abs().max() > 1e-3


def test_lcn_hand_computed_spike():
    """A 9 x 9 image, zero but s at its centre: every window holds the centre, so each pixel's local mean
    is s / n(p) (n(p): the window's pixels inside the image); at the centre the window is the image."""
    s = 81.0
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = s
    inside = [min(i, 4) + min(8 - i, 4) + 1 for i in range(9)]
    n = np.outer(inside, inside).astype(float)
    centred = -s / n
    centred[4, 4] = s - s / 81
    # the centre's std: the mean of the centred values over the whole image (its window)
    std_centre = math.sqrt((centred ** 2).mean())
    y = nv.local_contrast_norm(x)
    assert y[0, 0, 4, 4].item() == pytest.approx(centred[4, 4] / std_centre, rel=1e-12)
    # local means: every pixel's centred value is the input minus s / n(p)
    weight = torch.ones(1, 1, 9, 9, dtype=torch.float64)
    std = torch.sqrt(torch.nn.functional.conv2d(torch.from_numpy(centred ** 2)[None, None], weight, padding=4)
                     / torch.from_numpy(n)[None, None])
    assert torch.allclose(y[0, 0], torch.from_numpy(centred) / std[0, 0], rtol=1e-12)


def test_lcn_constant_image_is_zero():
    """No contrast, nothing left (up to rounding, which the threshold 1e-4 divides)."""
    assert nv.local_contrast_norm(torch.full((1, 1, 12, 12), 0.3, dtype=torch.float64)).abs().max() < 1e-9


def test_joint_parts_nyu():
    parts = nv.joint_parts("nyu")
    assert len(parts) == 14
    assert parts[0] == (20,)            # Pinky.T: little finger's distal bone
    assert parts[1] == (18, 19)         # Pinky.R (PIP): little PP and MP
    assert parts[6] == (8,)             # Index.T
    assert parts[8] == (4,)             # Thumb.T
    assert parts[9] == (3, 4)           # Thumb.R2 (IP)
    assert parts[10] == (2, 3)          # Thumb.R1 (MCP)
    assert parts[11:] == ((1,), (1,), (1,))


def test_masks_and_opening_on_constructed_map():
    labels = torch.zeros(1, 12, 12, dtype=torch.long)
    labels[0, 2:6, 2:6] = 20            # a 4 x 4 block of part 20: survives the opening
    labels[0, 8, 1:10] = 18             # a one-pixel line of part 18: removed by the opening
    labels[0, 8:11, 10] = 19            # a one-pixel column of part 19: removed too
    labels[0, 2:6, 6] = 19              # a one-pixel spur on the part-20 block ...
    parts = ((20,), (18, 19), (1,))
    masks = nv.joint_masks(labels, parts)
    assert masks.shape == (1, 3, 12, 12)
    assert masks[0, 0].sum() == 16 and masks[0, 1].sum() == 9 + 3 + 4 and masks[0, 2].sum() == 0
    opened = nv.opening(masks)
    assert torch.equal(opened[0, 0], masks[0, 0])          # a block at least 3 wide stays as it is
    assert opened[0, 1].sum() == 0                           # lines one pixel wide go
    assert opened[0, 2].sum() == 0
    # ... but a spur fused with a block of the same joint's parts stays with it (union first, then opening)
    fused = nv.opening(nv.joint_masks(labels, ((19, 20),)))
    assert fused[0, 0, 2:6, 2:7].sum() == 20 and fused[0, 0, 8:].sum() == 0
    # the local mask on a 6 x 6 grid: a cell is set when any of its 2 x 2 pixels is
    local = nv.local_masks(labels, parts, 6)
    assert local.shape == (1, 3, 6, 6)
    assert torch.equal(local[0, 0], torch.nn.functional.max_pool2d(masks[:, :1], 2)[0, 0])


def test_hand_labels_and_targets():
    parts = torch.tensor([[[0, 1, 21], [5, -1, 20]]])
    assert nv.hand_labels(parts).tolist() == [[[0, 1, 1], [5, -1, 20]]]
    parts = torch.tensor([[[0, 7, 21, 7], [7, 7, 7, 7], [5, 7, -1, 7], [7, 7, 7, 7]]])
    batch = {"parts": parts.repeat(2, 1, 1), "parts_trainable": torch.tensor([True, False])}
    t = nv.seg_targets(batch, 2)
    assert t[0].tolist() == [[-100, 0], [4, -100]]          # sub-sampled to 2 x 2: rows and columns 0, 2
    assert (t[1] == -100).all()                              # a frame whose labels may not be trained on


def _batch(size=48, batch=2, seed=0):
    from handlib.synth import SyntheticHands

    data = SyntheticHands("test", n=batch, size=size, progress=False)
    return data.batch(range(batch))


def test_segmentation_forward_backward_and_joints():
    torch.manual_seed(0)
    net = nv.build_seg("synthetic")
    batch = _batch()
    out = nv.seg_forward(net, batch)
    loss = nv.seg_loss(out, batch)["total"]
    loss.backward()
    assert torch.isfinite(loss) and net.conv1.weight.grad.abs().sum() > 0
    net.eval()
    with torch.no_grad():
        out = nv.seg_forward(net, batch)
    assert out["labels"].shape == (2, 48, 48)
    assert ((out["labels"] == 0) == (batch["depth"][:, 0] >= 1 - 1e-4)).all()
    assert nv.seg_predict(out).shape == (2, 14, 3) and torch.isfinite(nv.seg_predict(out)).all()


def test_segmentation_scores():
    truth = torch.tensor([[0, 1, 1, 2], [2, 2, 3, 3]])
    pred = torch.tensor([[5, 1, 2, 2], [2, 2, 3, 1]])
    scores = nv.segmentation_scores(pred, truth)
    assert scores["pixel_accuracy"] == pytest.approx(5 / 7)
    assert scores["class_accuracy"] == pytest.approx((1 / 2 + 3 / 3 + 1 / 2) / 3)


@pytest.mark.parametrize("variant", sorted(nv.REG_VARIANTS))
def test_regression_forward_backward(variant):
    torch.manual_seed(0)
    spec = get_model_spec("neverova_reg").for_variant(variant)
    net = spec.build(variant=variant)
    batch = _batch()
    if variant in nv.PER_JOINT:
        seg_net = nv.build_seg("synthetic").eval()
        batch = nv.attach_segmentation(seg_net, batch)
        assert batch["seg"].shape == (2, 48, 48)
    if variant == "cascade":
        direct = nv.build_reg("direct").eval()
        with torch.no_grad():
            batch = nv.attach_initial(direct, batch)
    out = spec.forward(net, batch)
    assert out["joints"].shape == (2, 14, 3)
    loss = spec.loss(out, batch)["total"]
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert torch.isfinite(loss) and all(g is not None for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_per_joint_networks_are_independent():
    """Network j's output depends on its own mask only (14 separate networks, batched)."""
    torch.manual_seed(0)
    net = nv.build_reg("per_joint_synthetic").eval()
    x = _crop(1, 24).float()
    # blocks of 4 x 4 pixels (an opening keeps them): labels 0..20 on a 12 x 12 grid
    seg = torch.arange(144).reshape(1, 12, 12) % 21
    seg = seg.repeat_interleave(4, 1).repeat_interleave(4, 2)
    changed = seg.clone()
    changed[seg == 20] = 5                  # only joint 0 (Pinky.T: part 20) sees part 20 ...
    with torch.no_grad():
        a, b = net(x, seg=seg)["joints"], net(x, seg=changed)["joints"]
    differs = (a - b).abs().amax(-1) > 0
    assert differs[0, 0]
    # ... and part 5 (index MC) belongs to no NYU joint, so no other network changes
    assert not differs[0, 1:].any()


def test_cascade_zoom_centres_on_the_estimate():
    net = nv.build_reg("cascade")
    batch = _batch()
    joints = batch["joints"].double()
    patches = net.zoomed(batch["depth"], batch, batch["joints"])
    uv = batch["joints_crop"][..., :2]
    # the patch centre's value is the crop's depth near the joint (bilinear between the 4 nearest pixels)
    centre = patches[..., 11:13, 11:13].mean((-2, -1))
    assert patches.shape == (2, 14, 24, 24)
    assert torch.allclose(nv.crop_positions(joints, batch, net.camera).float(), uv, atol=1e-3)
    near = batch["depth"][0, 0, uv[0, :, 1].round().long().clamp(0, 47), uv[0, :, 0].round().long().clamp(0, 47)]
    assert (centre[0] - near).abs().median() < 0.1


def test_registry_entries():
    seg, reg = get_model_spec("neverova_seg"), get_model_spec("neverova_reg")
    assert seg.chapter == reg.chapter == "neverova"
    assert set(reg.variants) == {"direct", "cascade", "per_joint_synthetic", "per_joint_weak"}
    assert reg.for_variant("direct").upstreams == ()
    assert [(u.model, u.variant) for u in reg.for_variant("cascade").upstreams] == [("neverova_reg", "direct")]
    assert [(u.model, u.variant) for u in reg.for_variant("per_joint_synthetic").upstreams] == [("neverova_seg", "synthetic")]
    assert [(u.model, u.variant) for u in reg.for_variant("per_joint_weak").upstreams] == [("neverova_seg", "weak")]
    assert [(u.model, u.variant) for u in seg.for_variant("weak").upstreams] == [("neverova_seg", "synthetic")]
    assert seg.data == "parts" and seg.selection.name == "pixel_accuracy" and not seg.selection.lower_is_better
    assert seg.build(variant="synthetic", seg_size="fast").seg_size == nv.FAST_SEG_SIZE
    # Torch7's learningRateDecay: lr / (1 + t · 1e-5) after t updates; the weak stage goes on at the end rate
    assert nv.SEG_RECIPE.schedule == "inverse" and nv.SEG_RECIPE.per_step
    assert nv.SEG_RECIPE.lr_at_step(170_974, 170_974) == pytest.approx(0.1 / (1 + 170_974 * 1e-5))
    assert nv.WEAK_RECIPE.lr == pytest.approx(0.1 / (1 + 100 * 170_974 * 1e-5))


# --- the weak mix: no real-like label may reach training ---------------------------------------------

SENTINEL = 99           # no valid label: wherever it shows up, a real-like frame's own labels leaked


class _Frames(torch.utils.data.Dataset):
    def __init__(self, n, size, parts_value, trainable):
        self.n, self.size, self.value, self.trainable = n, size, parts_value, trainable

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        s = self.size
        return {"depth": torch.full((1, s, s), 0.1 * i), "joints": torch.zeros(14, 3),
                "joints_xyz": torch.zeros(14, 3), "joints_uvd": torch.zeros(14, 3),
                "joints_crop": torch.zeros(14, 3), "com": torch.zeros(3), "cube": torch.full((3,), 250.0),
                "transform": torch.eye(3), "visible": torch.ones(14, dtype=torch.bool),
                "parts": torch.full((s, s), self.value, dtype=torch.long),
                "parts_trainable": torch.tensor(self.trainable), "index": torch.tensor(i)}


def test_weak_mix_never_trains_on_real_like_labels():
    size = 8
    synthetic = _Frames(45, size, 21, True)             # the arm label: mapped to the palm
    real_like = _Frames(10, size, SENTINEL, False)      # their true labels must never be seen
    restored = torch.stack([torch.full((size, size), 3 + i) for i in range(10)])
    accepted = np.array([True, False] * 5)              # rejected restorations are left out
    mix = nv.WeakMix(synthetic, real_like, restored, accepted)
    assert len(mix) == 50
    real_seen = set()
    for i in range(len(mix)):
        sample = mix[i]
        assert (sample["parts"] != SENTINEL).all(), f"item {i} carries a real-like frame's own labels"
        if sample["restored"]:
            frame = int(round(sample["depth"][0, 0, 0].item() * 10))
            real_seen.add(frame)
            assert torch.equal(sample["parts"], restored[frame])
        else:
            assert (sample["parts"] == 1).all()
    assert sum(bool(mix[i]["restored"]) for i in range(len(mix))) == len(mix) // 10     # 9 : 1
    assert real_seen == {0, 2, 4, 6, 8}
    # what the loss trains on, batch by batch: never a sentinel, and the real-like frames count
    batch = default_collate([mix[i] for i in range(20)])
    targets = nv.seg_targets(batch, size)
    assert (targets[batch["restored"]] >= 0).all()
    assert not (targets == SENTINEL - 1).any()


def test_weak_mix_requires_matching_restorations():
    with pytest.raises(ValueError, match="restored maps"):
        nv.WeakMix(_Frames(9, 8, 1, True), _Frames(3, 8, SENTINEL, False), torch.zeros(2, 8, 8), [True] * 2)
    with pytest.raises(ValueError, match="no accepted"):
        nv.WeakMix(_Frames(9, 8, 1, True), _Frames(2, 8, SENTINEL, False), torch.zeros(2, 8, 8), [False] * 2)


class _Guarded(dict):
    """A real-like sample whose labels may not be read: reading them fails the test."""

    def __getitem__(self, key):
        if key in ("parts", "parts_trainable"):
            raise AssertionError(f"a real-like frame's {key!r} was read")
        return super().__getitem__(key)


class _Hidden(torch.utils.data.Dataset):
    def __init__(self, frames):
        self.frames = frames

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, i):
        sample = dict(self.frames[i])
        sample["parts"] = torch.full_like(sample["parts"], SENTINEL)
        return _Guarded(sample)


def test_restored_real_like_frames_reach_training_without_their_labels():
    pytest.importorskip("faiss")
    from handlib.synth import SyntheticHands

    torch.manual_seed(0)
    synthetic = SyntheticHands("train", n=16, size=48, progress=False)
    real_like = _Hidden(SyntheticHands("test", n=4, size=48, domain="real-like", progress=False))
    dictionary = nv.patch_dictionary(synthetic, per_map=30)
    assert len(dictionary) == 16 * 30 and dictionary.patches.max() <= nv.NUM_PARTS
    seg_net = nv.build_seg("synthetic").eval()
    out = nv.restore_frames(seg_net, real_like, dictionary)
    assert out["restored"].shape == (4, 48, 48) and out["accepted"].dtype == bool
    assert not (out["restored"] == SENTINEL).any() and out["seconds_per_frame"] > 0
    accepted = np.ones(4, bool)                     # whatever was accepted: the mix reads no real label
    mix = nv.WeakMix(synthetic, real_like, out["restored"], accepted)
    for i in range(len(mix)):
        assert (mix[i]["parts"] != SENTINEL).all()


def test_weak_training_split_end_to_end(monkeypatch):
    pytest.importorskip("faiss")
    from handlib import restoration
    from handlib.synth import SyntheticHands

    torch.manual_seed(0)
    synthetic = SyntheticHands("train", n=18, size=48, progress=False)
    seg_net = nv.build_seg("synthetic", seg_size="fast").eval()
    # an untrained network's restorations are accepted or not by chance: fix the verdict
    monkeypatch.setattr(restoration, "accept", lambda before, after, joints, parts: True)
    mix, restored, dictionary = nv.weak_training_split(synthetic, seg_net, per_map=20)
    assert restored["restored"].shape == (2, 24, 24)          # 18 // 9 real-like frames, at the fast setting
    assert nv.restoration_sizes(24) == (13, 9) and nv.restoration_sizes(48) == (27, 17)
    assert dictionary.patch == 13 and restored["accepted"].all()
    batch = default_collate([mix[i] for i in range(10)])
    assert batch["parts"].shape == (10, 48, 48) and batch["restored"].sum() == 1
    monkeypatch.setattr(restoration, "accept", lambda before, after, joints, parts: False)
    with pytest.raises(ValueError, match="no accepted"):
        nv.weak_training_split(synthetic, seg_net, per_map=20)


def test_per_image_normalisation_ignores_the_batch():
    """Why larger batches are harmless for f_s: an image's output does not depend on the other images in
    its batch, nor on training vs evaluation mode (no running statistics)."""
    torch.manual_seed(0)
    net = nv.SegNet(24)
    x = _crop(4).float()
    together = net(x)["log_probs"]
    alone = net(x[1:2])["log_probs"]
    assert torch.allclose(together[1:2], alone, atol=1e-5)
    net.eval()
    assert torch.allclose(net(x)["log_probs"], together, atol=1e-5)


# --- the run-level training-split hook: the weak run trains on the mix ----------------------------------

def test_weak_run_trains_on_the_mix_and_names_the_hook(tmp_path, monkeypatch):
    pytest.importorskip("faiss")
    from dataclasses import replace

    from handlib import checkpoint, restoration, train
    from handlib.runs import default_out_dir, resolve_run, run_config, train_and_record

    seg = get_model_spec("neverova_seg")
    weak = seg.for_variant("weak")
    assert weak.train_split is nv.weak_split and weak.train_split_name == "handlib.models.neverova.weak_split"
    assert seg.for_variant("synthetic").train_split is None
    with pytest.raises(ValueError, match="train_split"):      # a lambda's name would not identify the data
        replace(seg, train_split=lambda train, stage_nets, profile: train)

    def config(variant):
        spec, variant, prof, recipe, convention = resolve_run("neverova_seg", variant, "synthetic", "smoke", None, None)
        return run_config(spec, variant, "synthetic", convention, prof, recipe, False)

    assert config("weak")["train_split"] == "handlib.models.neverova.weak_split"
    assert "train_split" not in config("synthetic")    # no hook, no key: every other model keeps its hash

    # the frozen synthetic-only f_s where a `train neverova_seg --variant synthetic` run leaves it (untrained
    # weights: what is tested is the wiring, not what it learns)
    upstream = tmp_path / default_out_dir("neverova_seg", "synthetic", "synthetic", "smoke", 0) / "best.pt"
    upstream.parent.mkdir(parents=True)
    torch.manual_seed(0)
    checkpoint.save({"format_version": checkpoint.FORMAT_VERSION, "kind": "best",
                     "meta": {"model": "neverova_seg", "variant": "synthetic", "dataset": "synthetic"},
                     "model": nv.build_seg("synthetic").state_dict()}, upstream)

    class Seen(Exception):
        """Stops the run once the loop has been handed its training split (no training needed here)."""

    def spy(net, loss, predict, train_set, val_set, recipe, options, *args, **kwargs):
        raise Seen(train_set, net, options.meta)

    monkeypatch.setattr(train, "fit", spy)
    # an untrained f_s's restorations are accepted or not by chance: fix the verdict
    monkeypatch.setattr(restoration, "accept", lambda before, after, joints, parts: True)
    with pytest.raises(Seen) as stopped:
        train_and_record("neverova_seg", variant="weak", profile="smoke", runs_root=tmp_path, progress=False)
    mix, net, meta = stopped.value.args
    assert isinstance(mix, nv.WeakMix) and len(mix.synthetic) == 64              # smoke: 64 synthetic frames
    assert len(mix) == 64 * 10 // 9 and sum(mix.is_real(i) for i in range(len(mix))) == len(mix) // 10
    assert len(mix.real_like) == 64 // 9 and mix.real_like.domain == "real-like"
    assert meta["train_split"] == "handlib.models.neverova.weak_split"
    frozen = checkpoint.load(upstream)["model"]                  # the weak stage starts from f_s's weights
    assert all(torch.equal(net.state_dict()[k], v) for k, v in frozen.items())


def test_regression_trains_on_the_real_like_dataset(tmp_path):
    """`python -m handlib train neverova_reg --dataset real-like`: f_r on the sensor-corrupted frames."""
    from handlib.cli import build_parser
    from handlib.runs import expected_hash, train_and_record

    args = build_parser().parse_args(["train", "neverova_reg", "--variant", "direct", "--dataset", "real-like"])
    assert args.dataset == "real-like"
    record, _, _ = train_and_record("neverova_reg", variant="direct", dataset="real-like", profile="smoke",
                                    runs_root=tmp_path, results_dir=tmp_path / "results", progress=False)
    assert record["dataset"] == "real-like" and record["convention"] == "nyu"
    assert math.isfinite(record["test"]["mean_error_mm"])
    # the frames depend on the sensor model too: its version is part of the configuration
    assert set(record["config"]["data_version"]) == {"render", "sensor"}
    assert record["config_hash"] == expected_hash("neverova_reg", "direct", "real-like", "smoke")
    assert expected_hash("neverova_reg", "direct", "synthetic", "smoke") != record["config_hash"]
