"""The preprocessing benchmark runs (tiny sizes; it prints figures, nothing is timed here)."""
import argparse
import json

from handlib.data import bench


def test_bench_preprocess_runs(capsys):
    parser = argparse.ArgumentParser()
    bench.add_bench(parser.add_subparsers(dest="target", required=True))
    args = parser.parse_args(["preprocess", "--batch", "2", "--repeats", "1", "--size", "32", "--json"])
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"device", "batch", "size", "crop_frames_per_s_best", "crop_frames_per_s_median",
                           "augment_frames_per_s_best", "augment_frames_per_s_median"}
    assert (result["batch"], result["size"]) == (2, 32)
    for stage in ("crop", "augment"):
        best, median = result[f"{stage}_frames_per_s_best"], result[f"{stage}_frames_per_s_median"]
        assert 0 < median <= best < 1e7, stage          # the best of the timed calls, a plausible rate
