"""CLI tests for ``python -m handlib render`` and ``bench render``."""
from __future__ import annotations

import json

import numpy as np
import pytest

from handlib.cli import main


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDLIB_CACHE_DIR", str(tmp_path / "cache"))


def test_render_writes_npz(tmp_path, capsys):
    out = tmp_path / "frames.npz"
    code = main(["render", "--n", "6", "--size", "32", "--seed", "3", "--domain", "real-like",
                 "--joints", "nyu", "--out", str(out)])
    assert code == 0 and out.exists()
    with np.load(out) as data:
        assert data["depth"].shape == (6, 32, 32)
        assert data["joints_xyz"].shape == (6, 14, 3) and data["joints_uvd"].shape == (6, 14, 3)
        assert data["parts"].shape == (6, 32, 32) and data["com"].shape == (6, 3)
        assert data["cube"].shape == (6, 3)
        assert np.all(np.abs(data["depth"]) <= 1)
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "n must be"), (["--n", "3", "--size", "0"], "crop size"),
    (["--n", "3", "--out", "x.txt"], ".npz"),
])
def test_render_bad_arguments_exit_2(tmp_path, capsys, argv, message):
    if "--out" not in argv:
        argv = argv + ["--out", str(tmp_path / "x.npz")]
    assert main(["render"] + argv) == 2
    assert message in capsys.readouterr().err


def test_render_unknown_choice_exits_2(tmp_path):
    with pytest.raises(SystemExit) as err:
        main(["render", "--n", "2", "--domain", "cartoon", "--out", str(tmp_path / "x.npz")])
    assert err.value.code == 2


def test_bench_json(capsys):
    assert main(["bench", "render", "--json", "--batch", "2", "--repeats", "1", "--workers", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["size"], r["domain"]) for r in rows} == {(96, "synthetic"), (96, "real-like"),
                                                       (128, "synthetic"), (128, "real-like")}
    assert all(0 < r["frames_per_s"] < 1e6 for r in rows)
