"""The evaluate CLI and the published-results registry, on the published files found where the library
looks for them (fixture ``published_dir``; never the network)."""
import json

import numpy as np
import pytest
from pathlib import Path

import argparse
import sys

from handlib.errors import UsageError
from handlib.data import cli as data_cli
from handlib.data import published
from handlib.data.checksums import SHA256
from handlib.data.label_files import write_label_file
REPO_ROOT = Path(__file__).resolve().parents[1]
from test_metrics import awesome_reference

def main(argv):
    """``python -m handlib`` restricted to this area's commands (others' modules may be mid-edit)."""
    parser = argparse.ArgumentParser()
    data_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def pred_path(folder, dataset, key):
    return str(folder / published.get_result(dataset, key).file)


def test_crossinfonet_nyu_prints_paper_value(capsys, published_dir):
    assert main(["evaluate", "nyu", pred_path(published_dir, "nyu", "CrossInfoNet")]) == 0
    out = capsys.readouterr().out
    assert "mean error: 10.08 mm" in out
    assert "Palm" in out and "<= 80 mm" in out


@pytest.mark.parametrize("dataset,key", [("nyu", "CrossInfoNet"), ("icvl", "V2V"), ("icvl", "LRF")])
def test_json_matches_reference(capsys, published_dir, dataset, key):
    assert main(["evaluate", dataset, pred_path(published_dir, dataset, key), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"frames", "joints", "mean_mm", "per_joint_mm", "success_max_frame"}
    assert list(result["success_max_frame"]) == ["10", "20", "30", "40", "50", "80"]
    pred = published.load_predictions(dataset, key)
    gt = published.load_ground_truth(dataset)
    cam = {"nyu": (588.03, -587.07, 320, 240), "icvl": (240.99, 240.96, 160, 120)}[dataset]
    ref_mean, ref_joint, ref_success = awesome_reference(pred, gt, *cam)
    assert abs(result["mean_mm"] - ref_mean) < 1e-3
    assert np.allclose(result["per_joint_mm"], ref_joint, atol=1e-3)
    assert result["success_max_frame"]["20"] == pytest.approx(ref_success[20])


def test_registry_files_are_checksummed():
    for r in published.REGISTRY:
        assert r.file in SHA256, r.file
        assert r.input in ("2D", "3D")
    for path in published.GROUND_TRUTH.values():
        assert path in SHA256


def test_missing_cache_says_how_to_fetch(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(published.ENV_VAR, str(tmp_path))
    with pytest.raises(published.PublishedFileMissing, match="published fetch"):
        published.load_ground_truth("nyu")
    pred = tmp_path / "p.txt"
    write_label_file(pred, np.ones((3, 14, 3)))
    assert main(["evaluate", "nyu", str(pred)]) == 2
    assert "nyu_test_groundtruth_label.txt" in capsys.readouterr().err


def test_checksum_mismatch_is_rejected(monkeypatch, tmp_path):
    monkeypatch.setenv(published.ENV_VAR, str(tmp_path))
    relpath = published.GROUND_TRUTH["icvl"]
    (tmp_path / relpath).parent.mkdir(parents=True)
    (tmp_path / relpath).write_text("1 2 3\n")
    with pytest.raises(ValueError, match="SHA-256"):
        published.published_path(relpath)


@pytest.fixture
def gt_file(tmp_path):
    rng = np.random.default_rng(1)
    gt = np.concatenate([rng.uniform(100, 200, (4, 16, 2)), rng.uniform(400, 600, (4, 16, 1))], -1)
    path = tmp_path / "gt.txt"
    write_label_file(path, gt)
    return path, gt


def run_bad(capsys, gt_path, text, tmp_path):
    pred = tmp_path / "pred.txt"
    pred.write_text(text)
    code = main(["evaluate", "icvl", str(pred), "--gt", str(gt_path)])
    return code, capsys.readouterr().err


def lines_of(gt):
    return [" ".join(f"{v:.3f}" for v in frame.reshape(-1)) for frame in gt]


def test_custom_gt_zero_error(capsys, gt_file, tmp_path):
    path, gt = gt_file
    # CRLF and trailing spaces are harmless, as in some published files.
    code, err = run_bad(capsys, path, "\r\n".join(l + " " for l in lines_of(gt)) + "\r\n", tmp_path)
    assert code == 0, err


def test_wrong_frame_count(capsys, gt_file, tmp_path):
    path, gt = gt_file
    code, err = run_bad(capsys, path, "\n".join(lines_of(gt)[:3]), tmp_path)
    assert code == 2 and "pred.txt" in err and "3 frames" in err and "expected 4" in err


def test_wrong_joint_count(capsys, gt_file, tmp_path):
    path, gt = gt_file
    lines = lines_of(gt)
    lines[2] = lines[2] + " 1 2 3"
    code, err = run_bad(capsys, path, "\n".join(lines), tmp_path)
    assert code == 2 and "line 3" in err and "51 values, expected 48" in err


def test_non_numeric(capsys, gt_file, tmp_path):
    path, gt = gt_file
    lines = lines_of(gt)
    lines[1] = lines[1].replace(lines[1].split()[5], "abc", 1)
    code, err = run_bad(capsys, path, "\n".join(lines), tmp_path)
    assert code == 2 and "line 2" in err and "non-numeric" in err and "'abc'" in err


def test_nan(capsys, gt_file, tmp_path):
    path, gt = gt_file
    lines = lines_of(gt)
    lines[3] = "nan " + " ".join(lines[3].split()[1:])
    code, err = run_bad(capsys, path, "\n".join(lines), tmp_path)
    assert code == 2 and "line 4" in err and "NaN" in err


def test_missing_pred_file(capsys, gt_file, tmp_path):
    path, _ = gt_file
    assert main(["evaluate", "icvl", str(tmp_path / "nope.txt"), "--gt", str(path)]) == 2
    assert "nope.txt: file not found" in capsys.readouterr().err


# How printed.py names a paper / table / dataset, and how data/paper_tables.csv does.
CSV_PAPER = {"CrossInfoNet": "crossinfonet", "Liu": "liu_spatial2d", "CADSTN": "cadstn", "Neverova": "neverova"}
CSV_METRIC = {"Neverova": "mean_error_3d"}


def test_printed_rows_match_paper_tables_under_their_own_key():
    """Each printed number equals the one row of data/paper_tables.csv with its own (paper, table,
    dataset, method): a value moved to another method or dataset fails."""
    from handlib.data import printed
    from handlib.report import paper_numbers
    for r in printed.PRINTED:
        if r.key is not None:
            published.get_result(r.dataset, r.key)       # every mapped key is registered
        # Feedback and Lie-X are printed in CrossInfoNet's MSRA column (a misprint the chapter explains).
        dataset = "MSRA" if "MSRA column" in r.note else r.dataset.upper()
        rows = paper_numbers(CSV_PAPER[r.paper], r.table.replace(" ", ""), dataset=dataset,
                             metric=CSV_METRIC.get(r.paper, "mean_error"), method=r.name)
        assert len(rows) == 1, (r, rows)
        assert rows["value"][0] == r.value_mm, (r, rows["value"][0])


def test_printed_rows_recompute_to_the_printed_digits(published_dir):
    """Every mapped print that is not self-reported rounds to the recomputed value (the chapter's table)."""
    from handlib.data import printed
    from handlib.geometry import get_camera
    from handlib.metrics import evaluate_uvd
    gt = {d: published.load_ground_truth(d) for d in ("nyu", "icvl")}
    preds = {}
    for r in printed.PRINTED:
        if r.key is None or "self-reported" in r.note:
            continue
        if (r.dataset, r.key) not in preds:
            preds[r.dataset, r.key] = published.load_predictions(r.dataset, r.key)
        pred = preds[r.dataset, r.key]
        cam = get_camera(r.dataset, evaluation=r.intrinsics == "evaluation")
        ours = evaluate_uvd(pred, gt[r.dataset][:len(pred)], cam)["mean_mm"]
        decimals = len(repr(r.value_mm).split(".")[1])
        assert abs(ours - r.value_mm) <= 0.5 * 10 ** -decimals + 1e-9, (r, ours)


class _FakeResponse:
    def __init__(self, data):
        import io
        self._buffer = io.BytesIO(data)

    def read(self, n=-1):
        return self._buffer.read(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_verifies_and_writes_atomically(monkeypatch, tmp_path, published_dir):
    """The downloader with the network replaced by the local copy (and by a corrupted one)."""
    relpath = published.GROUND_TRUTH["icvl"]
    good = (published_dir / relpath).read_bytes()
    urls = []
    monkeypatch.setenv(published.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(published.urllib.request, "urlopen",
                        lambda url, timeout: urls.append(url) or _FakeResponse(good))
    path = published.published_path(relpath, download=True)
    assert path.read_bytes() == good
    assert urls == [f"https://raw.githubusercontent.com/{published.REPO}/{published.COMMIT}/{relpath}"]
    other = published.GROUND_TRUTH["nyu"]
    monkeypatch.setattr(published.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(b"corrupt"))
    with pytest.raises(ValueError, match="SHA-256"):
        published.published_path(other, download=True)
    assert list((tmp_path / other).parent.iterdir()) == []      # no partial file left behind


def test_fetch_without_network_says_what_is_missing_and_how_to_provide_it(monkeypatch, tmp_path):
    import urllib.error

    def unreachable(url, timeout):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setenv(published.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(published.urllib.request, "urlopen", unreachable)
    assert len(published.missing_files()) == len(published.all_files())
    with pytest.raises(published.PublishedFileMissing) as err:
        published.fetch_all()
    message = str(err.value)
    assert f"{len(published.all_files())} of the {len(published.all_files())}" in message
    assert "python -m handlib published fetch" in message and published.ENV_VAR in message
    assert "Name or service not known" in message
    assert not any(tmp_path.rglob("*.part"))        # nothing half-written


def test_a_missing_prediction_file_is_named_before_the_cache(monkeypatch, tmp_path, capsys):
    """With an empty cache too, the user's missing file is the error, not the ground truth's absence."""
    from handlib.cli import main

    monkeypatch.setenv("HANDLIB_PUBLISHED_DIR", str(tmp_path))
    assert main(["evaluate", "nyu", str(tmp_path / "nonexistent.txt")]) == 2
    err = capsys.readouterr().err
    assert "nonexistent.txt: file not found (the prediction file" in err and "cache" not in err
