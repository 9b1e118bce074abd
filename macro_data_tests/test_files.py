"""The atomic-write helper: a file is replaced whole or not at all, in memory or streamed."""

from __future__ import annotations

import stat

import pytest

from macro_data.files import TEMP_SUFFIX, atomic_file, atomic_write


def test_a_streamed_file_replaces_the_target_when_the_block_ends(tmp_path):
    target = tmp_path / "sub" / "data.bin"
    with atomic_file(target) as part:
        assert part.parent == target.parent and part.name.endswith(TEMP_SUFFIX) and not part.exists()
        with open(part, "wb") as f:
            for i in range(3):
                f.write(bytes([i]) * 1000)
        assert not target.exists()  # nobody sees a part
    assert target.read_bytes() == b"\0" * 1000 + b"\1" * 1000 + b"\2" * 1000
    assert list(target.parent.iterdir()) == [target]


def test_a_failed_block_leaves_the_old_content_and_no_temporary_file(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    with pytest.raises(ValueError, match="checksum"):
        with atomic_file(target) as part:
            part.write_bytes(b"new but wrong")
            raise ValueError("checksum")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_atomic_write_keeps_an_explicit_mode_and_names_the_target(tmp_path):
    target = tmp_path / "registry.yaml"
    atomic_write(target, b"a: 1\n", mode=0o640)
    assert target.read_bytes() == b"a: 1\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
    missing = tmp_path / "no" / "such" / "folder" / "x"
    with pytest.raises(FileNotFoundError):
        atomic_write(missing, b"x", make_parents=False)
    assert not missing.parent.exists()
