"""The atomic-write helper: a file is replaced whole or not at all, in memory or streamed."""

from __future__ import annotations

import stat

import pytest

from macro_data.files import TEMP_SUFFIX, atomic_file, atomic_write, fsync_paths


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


def test_fsync_paths_syncs_files_and_folders_and_names_a_missing_one(tmp_path):
    files = [tmp_path / f"c{i}" for i in range(20)]
    for f in files:
        f.write_bytes(b"x")
    fsync_paths([*files, tmp_path])  # more paths than threads, a folder among them
    fsync_paths([])
    gone = tmp_path / "gone"
    fsync_paths([*files, gone], missing_ok=True)
    with pytest.raises(FileNotFoundError) as err:
        fsync_paths([*files, gone])
    assert err.value.filename == str(gone)
    with pytest.raises(FileNotFoundError):
        fsync_paths([gone])  # a single path takes the same rules without the thread pool
