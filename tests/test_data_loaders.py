"""Each loader on a tiny fixture written in its native format: joints come back, crops are on the hand."""
import numpy as np
import pytest
import torch
from PIL import Image

from handlib.data import hands17, icvl, msra, nyu
from handlib.data.base import DatasetFormatError
from handlib.geometry import get_camera, uvd_to_xyz
from handlib.sample import check_sample
from test_data_crop import disk_hand, on_hand_fraction


def hand_frames(n, j, cam, depth_mm=600.0, seed=0):
    """n frames of j joints (uvd) spread around the image centre, and their disk depth maps."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.tensor([cam.width / 2, cam.height / 2, depth_mm], dtype=torch.float64)
    scale = torch.tensor([cam.width / 16, cam.height / 16, 15.0], dtype=torch.float64)
    uvd = centre + torch.randn(n, j, 3, generator=g, dtype=torch.float64) * scale
    depth = disk_hand(uvd, cam.height, cam.width, radius=cam.width / 90)
    return uvd.numpy(), depth.round().numpy()


def check_dataset(ds, uvd, j, atol=1e-3):
    batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
    for i in range(len(ds)):
        check_sample(ds[i], ds.size, j)
    assert np.allclose(batch["joints_uvd"].numpy(), uvd, atol=atol)
    assert on_hand_fraction(batch) == 1.0
    return batch


def save_png16(path, depth):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(depth.astype(np.uint16)).save(path)


def test_nyu_fixture(tmp_path):
    from scipy.io import savemat
    cam = get_camera("nyu")
    uvd, depth = hand_frames(3, 14, cam)
    full = np.zeros((3, 3, 36, 3))
    full[0][:, nyu.EVAL_JOINT_IDS] = uvd
    (tmp_path / "test").mkdir()
    savemat(tmp_path / "test" / "joint_data.mat", {"joint_uvd": full, "joint_xyz": full})
    for i in range(3):
        Image.fromarray(nyu.encode_depth(depth[i])).save(tmp_path / "test" / f"depth_1_{i + 1:07d}.png")
    assert np.array_equal(nyu.decode_depth(nyu.encode_depth(depth[0])), depth[0])
    ds = nyu.NYUDataset(tmp_path, "test")
    assert ds.convention.name == "nyu" and len(ds) == 3
    batch = check_dataset(ds, uvd, 14)
    assert torch.allclose(batch["cube"], torch.full((3, 3), 250.0))
    # Given centres (V2V format, world mm; one invalid line falls back to the computed CoM).
    centre_xyz = uvd_to_xyz(torch.from_numpy(uvd[:, 13]), cam).numpy()
    lines = [" ".join(f"{v:.4f}" for v in c) for c in centre_xyz]
    lines[1] = "invalid"
    (tmp_path / "centres.txt").write_text("\n".join(lines) + "\n")
    given = nyu.NYUDataset(tmp_path, "test", centres=tmp_path / "centres.txt")
    assert np.allclose(given[0]["com"].numpy(), centre_xyz[0], atol=1e-2)
    assert np.allclose(given[1]["com"].numpy(), ds[1]["com"].numpy())
    with pytest.raises(ValueError, match="split='test'"):
        nyu.NYUDataset(tmp_path, "test", subject="C")
    with pytest.raises(DatasetFormatError, match="has no folder train/"):
        nyu.NYUDataset(tmp_path, "train")


def test_nyu_wrong_png_channels(tmp_path):
    from scipy.io import savemat
    (tmp_path / "test").mkdir()
    savemat(tmp_path / "test" / "joint_data.mat", {"joint_uvd": np.full((1, 1, 36, 3), 300.0)})
    save_png16(tmp_path / "test" / "depth_1_0000001.png", np.full((480, 640), 500))
    with pytest.raises(DatasetFormatError, match="1-channel image, expected 3"):
        nyu.NYUDataset(tmp_path, "test")[0]


def test_icvl_fixture(tmp_path):
    cam = get_camera("icvl")
    uvd, depth = hand_frames(4, 16, cam, seed=1)
    names = ["201403121135/image_0000.png", "201403121135/image_0001.png", "45/image_0000.png",
             "45/image_0001.png"]
    for name, d in zip(names, depth):
        d = d.copy()
        d[0, 0] = icvl.NO_VALUE
        save_png16(tmp_path / "Training" / "Depth" / name, d)
    lines = [n + " " + " ".join(f"{v:.3f}" for v in u.reshape(-1)) for n, u in zip(names, uvd)]
    (tmp_path / "Training" / "labels.txt").write_text("\n".join(lines) + "\n")
    ds = icvl.ICVLDataset(tmp_path, "train")
    check_dataset(ds, uvd, 16)
    assert ds.load_depth(0)[0, 0] == 0          # the no-value marker reads as background
    genuine = icvl.ICVLDataset(tmp_path, "train", genuine_only=True)
    assert genuine.names == names[:2]
    # Test sequences, CRLF like AWESOME's copies, concatenated seq 1 then seq 2.
    for k, seq in enumerate(icvl.TEST_SEQUENCES):
        rows = []
        for i in range(2):
            name = f"{seq}/image_{i:04d}.png"
            save_png16(tmp_path / "Testing" / "Depth" / name, depth[2 * k + i])
            rows.append(name + " " + " ".join(f"{v:.3f}" for v in uvd[2 * k + i].reshape(-1)) + " ")
        (tmp_path / "Testing" / f"{seq}.txt").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    test = icvl.ICVLDataset(tmp_path, "test")
    check_dataset(test, uvd, 16)
    assert len(icvl.ICVLDataset(tmp_path, "test", sequence="A")) == 2
    (tmp_path / "Testing" / "test_seq_2.txt").write_text("x.png 1 2 3\n")
    with pytest.raises(DatasetFormatError, match="test_seq_2.txt, line 1: 3 numbers, expected 48"):
        icvl.ICVLDataset(tmp_path, "test")


def test_msra_fixture(tmp_path):
    cam = get_camera("msra")
    uvd, depth = hand_frames(4, 21, cam, depth_mm=350.0, seed=2)
    xyz = uvd_to_xyz(torch.from_numpy(uvd), cam).numpy()
    for subject, frames in (("P0", [0, 1]), ("P1", [2, 3])):
        folder = tmp_path / subject / "5"
        folder.mkdir(parents=True)
        stored = xyz[frames].copy()
        stored[..., 2] *= -1                                 # z is stored negative
        body = "\n".join(" ".join(f"{v:.4f}" for v in f.reshape(-1)) for f in stored)
        (folder / "joint.txt").write_text(f"{len(frames)}\n{body}\n")
        for k, i in enumerate(frames):
            msra.write_bin(folder / f"{k:06d}_depth.bin", depth[i])
    assert np.array_equal(msra.read_bin(tmp_path / "P0" / "5" / "000000_depth.bin"), depth[0])
    ds = msra.MSRADataset(tmp_path)
    assert ds.frame_keys[2] == ("P1", "5", 0)
    check_dataset(ds, uvd, 21, atol=1e-2)
    train, test = msra.leave_one_out(tmp_path, "P1")
    assert len(train) == 2 and len(test) == 2
    (tmp_path / "P0" / "5" / "000001_depth.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(DatasetFormatError, match="24-byte int32 header"):
        ds[1]
    with pytest.raises(ValueError, match="P9"):
        msra.MSRADataset(tmp_path, ["P9"])


def test_msra_faulty_frames_listed():
    assert msra.FAULTY_FRAMES[("P8", "4")] == (168,)
    assert len(msra.FAULTY_FRAMES[("P2", "MP")]) == 16


def test_hands17_fixture(tmp_path):
    cam = get_camera("hands17")
    uvd, depth = hand_frames(2, 21, cam, seed=3)
    xyz = uvd_to_xyz(torch.from_numpy(uvd), cam).numpy()
    names = [f"image_D{i + 1:08d}.png" for i in range(2)]
    for name, d in zip(names, depth):
        save_png16(tmp_path / "training" / "images" / name, d)
    lines = [n + "\t" + "\t".join(f"{v:.4f}" for v in x.reshape(-1)) for n, x in zip(names, xyz)]
    (tmp_path / "training" / "Training_Annotation.txt").write_text("\n".join(lines) + "\n")
    ds = hands17.Hands17Dataset(tmp_path)
    batch = check_dataset(ds, uvd, 21, atol=1e-2)
    assert np.allclose(batch["joints_xyz"].numpy(), xyz, atol=1e-2)
    assert cam.fy > 0    # y not flipped for HANDS2017
