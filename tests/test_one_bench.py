"""The closing chapter's bench: its profiles and frames, the leaderboard, the paired statistics, the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from handlib import one_bench, report, results
from handlib.experiments import expected_hash
from handlib.metrics import joint_errors, mean_error, success_auc
from handlib.profiles import BENCH_BUDGET, BENCH_CLIP_LENGTH, get_profile


def test_bench_profile_counts_frames_for_every_network():
    # A frame network's counts are frames, a clip network's the same frames as clips.
    book = BENCH_BUDGET["book"]
    liu = get_profile("book-bench", "liu", "attention")
    cadstn = get_profile("book-bench", "cadstn", "temporal")
    assert liu.train_frames == book["train_frames"] and liu.epochs == 1
    assert cadstn.train_frames * BENCH_CLIP_LENGTH == book["train_frames"]
    assert cadstn.test_frames * BENCH_CLIP_LENGTH == liu.test_frames == book["test_frames"]
    # each keeps its chapter's sizes
    assert liu.image_size == get_profile("book", "liu").image_size
    assert cadstn.batch_size == get_profile("book", "cadstn", "temporal").batch_size
    # the Gumbel-softmax anneal follows the budget: two thirds of the run's steps, as in the chapter
    groups, chapter = get_profile("book-bench", "joint_groups", "g3"), get_profile("book", "joint_groups", "g3")
    assert groups.extra["anneal_steps"] == round(chapter.extra["anneal_steps"] * groups.train_frames / chapter.train_frames)


def test_every_model_is_tested_on_the_same_frames():
    # Frame networks read the bench's clips frame by frame: the same joints, centres and cubes as CADSTN's
    # clips, whatever the crop size.
    from handlib.models.registry import get_model_spec
    from handlib.runs import load_splits

    def test_split(model, variant):
        spec = get_model_spec(model).for_variant(variant)
        prof = get_profile("smoke-bench", spec.chapter, variant)
        return load_splits(spec, "synthetic", prof, "nyu", "")["test"]

    frames, clips = test_split("joint_groups", "g3"), test_split("cadstn", "cadstn")
    assert len(frames) == len(clips) * BENCH_CLIP_LENGTH
    first_clip = clips[0]
    for step in (0, BENCH_CLIP_LENGTH - 1):
        for key in ("joints_xyz", "com", "cube"):
            assert torch.equal(frames[step][key], first_clip[key][step]), key
    assert frames[0]["depth"].shape[-1] != first_clip["depth"].shape[-1]     # each at its own crop size


def _fake_run(entry, seed, truth, offset_mm, directory):
    """A record of ``entry``'s run at smoke-bench whose predictions are ``truth`` + ``offset_mm``."""
    record = {"chapter": "fake", "model": entry.model, "variant": entry.variant, "dataset": "synthetic",
              "convention": "nyu", "profile": "smoke-bench", "seed": seed, "schema_version": 1, "epochs": 1,
              "final_val": {}, "best_val": {}, "test": {}, "wall_s": 60.0 * (seed + 1), "device": "cpu",
              "config_hash": expected_hash(entry.model, entry.variant, "synthetic", "smoke-bench")}
    from handlib.models.registry import get_model_spec

    record["chapter"] = get_model_spec(entry.model).chapter
    results.write_record(record, directory)
    results.write_predictions(record, truth + offset_mm, truth, directory)
    return truth + offset_mm


def test_leaderboard_equals_the_hand_computed_table(tmp_path, monkeypatch):
    monkeypatch.setitem(BENCH_BUDGET["smoke"], "seeds", (0, 1, 2))       # three seeds, as at book
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.normal(0, 50, (20, 14, 3)).astype(np.float32)) + 400
    entries = one_bench.ENTRIES[:2]
    expected = {}
    for k, entry in enumerate(entries):
        errors, aucs = [], []
        for seed in (0, 1, 2) if k == 0 else (0,):
            offset = torch.zeros_like(truth)
            offset[..., 0] = float(5 * (k + 1) + seed)      # every joint off by this many mm along x
            pred = _fake_run(entry, seed, truth, offset, tmp_path)
            errors.append(5 * (k + 1) + seed)
            aucs.append(success_auc(joint_errors(pred, truth)))
        expected[entry.key] = (len(errors), np.mean(errors), np.std(errors, ddof=1) if len(errors) > 1 else math.nan,
                               np.mean(aucs))
    # hand-computed AUC of a constant 5 mm error: the curve is 0 below 5 mm and 1 from 5 mm to 80 mm
    assert expected["baseline"][3] == pytest.approx(np.mean([(80 - e + 0.5) / 80 for e in (5, 6, 7)]), abs=1e-3)
    table = one_bench.leaderboard("smoke", results_dir=tmp_path, entries=entries, cost=False)
    for _, row in table.iterrows():
        seeds, error, std, auc = expected[row["key"]]
        assert row["seeds"] == seeds
        assert row["mean_error_mm"] == pytest.approx(error, abs=0.02)       # float16 offsets
        assert (math.isnan(row["std_mm"]) and math.isnan(std)) or row["std_mm"] == pytest.approx(std, abs=0.02)
        assert row["auc"] == pytest.approx(auc, abs=1e-6)
    # a model without records is listed with no seeds
    empty = one_bench.leaderboard("smoke", results_dir=tmp_path, entries=one_bench.ENTRIES[2:3], cost=False)
    assert empty.iloc[0]["seeds"] == 0 and math.isnan(empty.iloc[0]["mean_error_mm"])


def test_leaderboard_cli_json(tmp_path, capsys):
    from handlib.cli import main

    truth = torch.full((4, 14, 3), 300.0)
    entry = one_bench.get_entry("joint_groups")
    _fake_run(entry, 0, truth, torch.full_like(truth, 2.0), tmp_path)
    assert main(["leaderboard", "--profile", "smoke", "--results-dir", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == [e.label for e in one_bench.ENTRIES]
    row = next(r for r in rows if r["variant"] == "g3")
    assert set(row) == {"model", "variant", "seeds", "mean_error_mm", "std_mm", "auc", "params", "flops_per_frame"}
    assert row["seeds"] == 1 and row["mean_error_mm"] == pytest.approx(2 * 3 ** 0.5, abs=0.01)
    assert row["params"] == one_bench.pipeline_cost(entry, "smoke-bench")["params"] > 0
    with pytest.raises(SystemExit) as exit_info:         # argparse: a profile the bench does not have
        main(["leaderboard", "--profile", "full"])
    assert exit_info.value.code == 2


def test_pipeline_cost_counts_attached_stages():
    # Liu et al.'s attention network runs after the hand-location network: both count.
    from handlib.models.registry import get_model_spec
    from handlib.models.summary import count_parameters

    liu = one_bench.pipeline_cost(one_bench.get_entry("liu"), "smoke-bench")
    alone = count_parameters(get_model_spec("liu").build_for("attention", "nyu", get_profile("smoke-bench", "liu", "attention")))
    handloc = count_parameters(get_model_spec("liu").build_for("handloc", "nyu", get_profile("smoke-bench", "liu", "handloc")))
    assert alone < liu["params"] <= alone + handloc


def test_bootstrap_interval_covers_a_known_difference():
    rng = np.random.default_rng(3)
    a = rng.gamma(4, 5, (3, 400))
    b = a + 1.5 + rng.normal(0, 3, (3, 400))
    stats = report.bootstrap_difference(a, b, resamples=1000)
    assert stats["ci_low"] < -1.5 < stats["ci_high"]          # a - b = -1.5 mm
    assert stats["ci_high"] < 0 and stats["frames"] == 400 and stats["seeds"] == 3
    assert "more accurate" in report.difference_sentence("A", "B", stats)
    # no difference: the interval covers 0 and the words say so
    same = report.bootstrap_difference(a, a + rng.normal(0, 3, (3, 400)), resamples=1000)
    assert same["ci_low"] < 0 < same["ci_high"]
    assert "within noise" in report.difference_sentence("A", "B", same)


def test_paired_statistics_refuse_unpaired_inputs():
    truth = torch.zeros(5, 14, 3)
    other = torch.ones(5, 14, 3)
    with pytest.raises(ValueError, match="not paired: seeds"):
        report.paired_frame_errors({0: (truth, truth)}, {1: (truth, truth)})
    with pytest.raises(ValueError, match="not paired: seed 0's test frames differ"):
        report.paired_frame_errors({0: (truth, truth)}, {0: (other, other)})
    with pytest.raises(ValueError, match="not paired"):
        report.bootstrap_difference(np.zeros((3, 10)), np.zeros((3, 11)))
    a, b = report.paired_frame_errors({0: (truth + 1, truth)}, {0: (truth, truth)}, names=("x", "y"))
    assert a.shape == b.shape == (1, 5) and np.allclose(a, 3 ** 0.5) and np.allclose(b, 0)


def test_a_model_that_learns_part_labels_cannot_train_on_real_like_frames():
    neverova = one_bench.get_entry("neverova")
    assert one_bench.trainable_on(neverova, "synthetic") and not one_bench.trainable_on(neverova, "real-like")
    assert all(one_bench.trainable_on(e, "real-like") for e in one_bench.ENTRIES if e is not neverova)
    with pytest.raises(ValueError, match="Neverova et al. \\(d\\) cannot train on 'real-like'"):
        one_bench.run_bench("smoke", "real-like", (neverova,), train=False)
    # its leaderboard row on real-like frames is there, with no seeds
    board = one_bench.leaderboard("smoke", "real-like", entries=(neverova,), cost=False)
    assert board.iloc[0]["seeds"] == 0


def test_stages_come_before_what_builds_on_them():
    assert one_bench.stages(one_bench.get_entry("neverova")) == [
        ("neverova_seg", "synthetic"), ("neverova_seg", "weak"), ("neverova_reg", "per_joint_weak")]
    cadstn = one_bench.stages(one_bench.get_entry("cadstn"))
    assert cadstn[-1] == ("cadstn", "cadstn") and cadstn.index(("cadstn", "baseline")) < cadstn.index(("cadstn", "temporal"))
