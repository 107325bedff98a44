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
    assert result["crop_frames_per_s_best"] > 0 and result["augment_frames_per_s_best"] > 0
