"""Atomic writes: complete file or none, and the permissions a plain open() would give."""
from __future__ import annotations

import os

import pytest

from handlib.fileio import atomic_write, atomic_write_text, sha256_file


def test_atomic_write_gives_the_mode_of_a_plain_open(tmp_path):
    old = os.umask(0o022)
    try:
        written = atomic_write_text(tmp_path / "record.json", "{}")
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
    finally:
        os.umask(old)
    assert written.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_leaves_neither_a_file_nor_a_temporary(tmp_path):
    def dies(f):
        f.write(b"half")
        raise RuntimeError("disk gone")
    with pytest.raises(RuntimeError, match="disk gone"):
        atomic_write(tmp_path / "out.bin", dies)
    assert list(tmp_path.iterdir()) == []


def test_sha256_of_a_known_text(tmp_path):
    path = atomic_write_text(tmp_path / "abc.txt", "abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
