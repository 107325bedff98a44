"""``python -m handlib --help`` builds its parser without torch, and every command's help still works."""
import argparse
import json
import os
import subprocess
import sys

import pytest
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
from handlib.cli import build_parser


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_building_the_parser_imports_no_torch():
    code = ("import sys\n"
            "from handlib.cli import build_parser\n"
            "build_parser()\n"
            "print(sorted(m for m in ('torch', 'numpy', 'scipy', 'PIL') if m in sys.modules))\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"heavy modules imported to build the parser: {proc.stdout}"


def test_top_level_help_exits_0():
    proc = subprocess.run([sys.executable, "-m", "handlib", "--help"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for command in ("book", "render", "evaluate", "published", "summary", "train", "bench"):
        assert command in proc.stdout


def command_paths(parser: argparse.ArgumentParser, prefix=()):
    """Every (sub)command path of ``parser``, e.g. ("bench", "infer")."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,)
                yield from command_paths(sub, prefix + (name,))


COMMANDS = sorted(command_paths(build_parser()))


def test_every_command_is_listed():
    assert {("train",), ("evaluate",), ("summary",), ("render",), ("bench", "infer"), ("bench", "train"),
            ("bench", "render"), ("bench", "preprocess"), ("book", "run")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_command_help_exits_0(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*path, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: python -m handlib " + " ".join(path))


@pytest.mark.parametrize("path,shown", [
    (("train",), ["{cadstn,crossinfonet,joint_groups,liu,neverova_reg,neverova_seg}", "{synthetic,real-like,nyu,icvl,msra,hands17}", "{smoke,book,full}",
                  "{auto,off,bf16,fp16}"]),
    (("bench", "train"), ["{cadstn,crossinfonet,joint_groups,liu,neverova_reg,neverova_seg}", "{smoke,book,full}"]),
    (("bench", "infer"), ["{cadstn,crossinfonet,joint_groups,liu,neverova_reg,neverova_seg}", "{nyu,icvl,msra,hands17}"]),
    (("summary",), ["{cadstn,crossinfonet,joint_groups,liu,neverova_reg,neverova_seg}"]),
    (("render",), ["{synthetic,real-like}"]),
    (("evaluate",), ["{nyu,icvl,msra}"]),
])
def test_help_lists_the_choices(path, shown, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([*path, "--help"])
    out = capsys.readouterr().out
    for choices in shown:
        assert choices in out


def test_static_choice_lists_match_the_real_ones():
    """The light copies the parsers use equal what the heavy modules define (fresh process: no model
    registered by another test)."""
    code = ("import json\n"
            "from handlib import cli, train, train_cli\n"
            "from handlib.data import cli as data_cli, published\n"
            "from handlib.models.registry import MODEL_NAMES, model_names\n"
            "from handlib.synth import cli as synth_cli, poses\n"
            "print(json.dumps([[list(MODEL_NAMES), model_names()],\n"
            "                  [list(train_cli.AMP_MODES), list(train.AMP_MODES)],\n"
            "                  [list(synth_cli.DOMAINS), list(poses.DOMAINS)],\n"
            "                  [data_cli.PUBLISHED_REPO, published.REPO],\n"
            "                  [sorted(data_cli.EVAL_DATASETS), sorted(published.EVAL_JOINTS)]]))\n")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    for static, real in json.loads(proc.stdout):
        assert static == real


def test_a_bad_model_name_is_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["train", "no-such-model"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "no-such-model" in err and "crossinfonet" in err
