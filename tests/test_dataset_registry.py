"""handlib.dataset_registry is the one list of datasets: every --dataset choice, table and message reads it."""
from __future__ import annotations

import argparse

import pytest

from handlib import geometry, profiles, train_cli
from handlib.cli import build_parser
from handlib.data import base, published
from handlib.dataset_registry import DATASETS, KINDS, dataset_names, get_dataset
from handlib.joints import CONVENTIONS
from test_cli_help import run_python

# The kind of dataset each command's --dataset (or positional dataset) accepts. A new command with a
# dataset argument must be added here with its kind.
CLI_KINDS = {
    ("train",): None,
    ("bench", "train"): None,
    ("book", "run"): None,
    ("evaluate",): "evaluable",
    ("published", "list"): "published",
    ("published", "fetch"): "published",
    ("summary",): "real",
    ("bench", "infer"): "real",
    ("leaderboard",): "synthetic",       # the bench trains on the rendered domains only
}


def dataset_actions(parser: argparse.ArgumentParser, prefix=()):
    """(command path, action) for every argument named ``dataset`` in the parser tree."""
    for action in parser._actions:
        if action.dest == "dataset":
            yield prefix, action
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from dataset_actions(sub, prefix + (name,))


def test_every_cli_dataset_choice_is_a_registry_kind():
    found = dict(dataset_actions(build_parser()))
    assert set(found) == set(CLI_KINDS)
    for path, action in found.items():
        assert tuple(action.choices) == dataset_names(CLI_KINDS[path]), path


def test_module_lists_read_the_registry():
    assert profiles.DATASET_NAMES == dataset_names()
    assert train_cli.REAL_DATASETS == dataset_names("real")
    assert set(base.DATASET_TITLES) == set(base.EXPECTED_LAYOUT) == set(dataset_names("real"))
    assert set(published.EVAL_JOINTS) == set(published.TEST_FRAMES) == set(dataset_names("evaluable"))
    assert set(published.GROUND_TRUTH) == set(dataset_names("published"))
    assert {r.dataset for r in published.REGISTRY} <= set(dataset_names("published"))
    assert set(geometry.TRAIN_CAMERAS) == set(dataset_names("real"))
    assert set(geometry.EVAL_CAMERAS) == set(dataset_names("evaluable"))
    for name in dataset_names("real"):
        info = get_dataset(name)
        assert base.DATASET_TITLES[name] == info.title and base.EXPECTED_LAYOUT[name] == info.layout


def test_each_entry_is_consistent():
    # HANDS2017 has no test labels
    assert dataset_names("trainable") == ("synthetic", "real-like", "nyu", "icvl", "msra")
    assert dataset_names("part_labels") == ("synthetic",)
    assert set(get_dataset("synthetic").conventions) == set(CONVENTIONS)
    for info in DATASETS.values():
        assert set(info.conventions) <= set(CONVENTIONS)
        loader = info.load()
        if info.synthetic:
            assert info.load(clips=True).__name__ == "SyntheticClips"
            continue
        assert info.conventions == (info.name,)         # real data: its own joint order only
        assert callable(loader.for_split) and callable(loader.sequences)
        assert info.layout and info.test_frames and info.sequences
        if info.eval_intrinsics is not None:
            assert info.eval_joints == CONVENTIONS[info.name].num_joints
            assert geometry.get_camera(info.name, evaluation=True) == geometry.Camera(*info.eval_intrinsics)
        assert geometry.get_camera(info.name) == geometry.Camera(*info.train_intrinsics)


def test_unknown_dataset_lists_the_valid_names():
    from handlib.datasets import build_datasets

    for call in (lambda: get_dataset("coco"), lambda: build_datasets("coco", "smoke", "nyu", 32, 0)):
        with pytest.raises(ValueError) as info:
            call()
        message = str(info.value)
        assert message.startswith("unknown dataset 'coco'; valid values:")
        assert all(name in message for name in dataset_names())
    with pytest.raises(ValueError, match="unknown dataset kind 'fancy'; valid values: " + ", ".join(KINDS)):
        dataset_names("fancy")


def test_the_hands2017_refusal_reads_the_title():
    from handlib.datasets import build_datasets

    with pytest.raises(ValueError, match=r"no labelled test split .* \(the HANDS2017 test labels are not public\)"):
        build_datasets("hands17", "smoke", "hands17", 32, 0, data_root="/nowhere")


def test_registry_import_is_light():
    proc = run_python("import sys\nimport handlib.dataset_registry\n"
                      "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
