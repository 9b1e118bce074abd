"""Integrity: corrupt data is refused with an error naming the world, array, file and hashes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

import macro_data.read as mdr
from macro_data.storage.arrays import content_hash


def _edit_manifest(folder, edit):
    path = folder / "manifest.json"
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _chunk_file(folder, world, name, c):
    arr = zarr.open_array(str(folder / f"{world}.zarr" / name), mode="r")
    key = arr.metadata.chunk_key_encoding.encode_chunk_key((c,) + (0,) * (arr.ndim - 1))
    return folder / f"{world}.zarr" / name / key


def test_clean_dataset_verifies(read_dataset):
    ds = mdr.open_dataset(read_dataset, verify=True)
    hashes = ds.verify()
    manifest = json.loads((read_dataset / "manifest.json").read_text())
    for w, arrays in hashes.items():
        assert set(arrays) == set(manifest["worlds"][w]["arrays"])
        for name, digest in arrays.items():
            assert digest == manifest["worlds"][w]["arrays"][name]["sha256"]
            assert digest == content_hash(zarr.open_array(str(read_dataset / f"{w}.zarr" / name), mode="r"))


def test_flipped_byte_fails_its_checksum_naming_the_file(dataset_copy):
    chunk = _chunk_file(dataset_copy, "nk", "trajectories", 3)
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    chunk.write_bytes(bytes(raw))
    ds = mdr.open_dataset(dataset_copy)  # metadata is intact: opening without verify works
    traj = ds["nk"]["trajectories"]
    reference = zarr.open_array(str(dataset_copy / "nk.zarr" / "trajectories"), mode="r")[:300]
    np.testing.assert_array_equal(traj[:300], reference)  # other chunks still read
    with pytest.raises(
        mdr.IntegrityError,
        match=r"world 'nk' array 'trajectories': chunk file .*c\.3\.0\.0 "
        r"\(samples 300..399\) is corrupt: .*checksum",
    ):
        traj[350]
    with pytest.raises(mdr.IntegrityError, match=r"c\.3\.0\.0"):
        mdr.open_dataset(dataset_copy, verify=True)
    with pytest.raises(mdr.IntegrityError, match=r"c\.3\.0\.0"):
        for _ in ds.training_view(None, batch_size=64, worlds=["nk"]).iter(0):
            pass
    assert ds["rbc"].verify()  # an intact world still verifies


def test_edited_manifest_hash_is_refused_at_open(dataset_copy):
    original = json.loads((dataset_copy / "manifest.json").read_text())["worlds"]["nk"]["arrays"]["irfs"]["sha256"]
    _edit_manifest(dataset_copy, lambda d: d["worlds"]["nk"]["arrays"]["irfs"].update(sha256="0" * 64))
    with pytest.raises(mdr.IntegrityError) as info:
        mdr.open_dataset(dataset_copy)
    msg = str(info.value)
    assert "world 'nk' array 'irfs'" in msg and "0" * 64 in msg and original in msg
    # the other worlds are still readable
    assert mdr.open_dataset(dataset_copy, worlds=["rbc"]).worlds == ("rbc",)


def test_rewritten_data_with_valid_checksums_fails_verify(dataset_copy):
    arr = zarr.open_array(str(dataset_copy / "rbc.zarr" / "theta"), mode="r+")
    row = arr[42]
    arr[42] = row * np.float32(1.0001)  # a well-formed chunk (valid crc32c) with different numbers
    expected = json.loads((dataset_copy / "manifest.json").read_text())["worlds"]["rbc"]["arrays"]["theta"]["sha256"]
    actual = content_hash(zarr.open_array(str(dataset_copy / "rbc.zarr" / "theta"), mode="r"))
    assert actual != expected
    ds = mdr.open_dataset(dataset_copy)  # the cheap checks cannot see it
    with pytest.raises(mdr.IntegrityError) as info:
        ds.verify()
    msg = str(info.value)
    assert "world 'rbc' array 'theta'" in msg and expected in msg and actual in msg
    with pytest.raises(mdr.IntegrityError, match="content hash mismatch"):
        mdr.open_dataset(dataset_copy, verify=True)
    ds["nk"].verify()


def test_missing_chunk_is_an_error_not_nan(dataset_copy):
    _chunk_file(dataset_copy, "rbc", "trajectories", 1).unlink()
    _chunk_file(dataset_copy, "rbc", "split", 0).unlink()
    ds = mdr.open_dataset(dataset_copy)  # lazy: no data read at open
    missing = r"chunk file .*trajectories/c\.1\.0\.0 \(samples 100..199\) is missing"
    with pytest.raises(mdr.IntegrityError, match=missing):
        ds["rbc"]["trajectories"][150]
    with pytest.raises(mdr.IntegrityError, match=r"split/c\.0 \(samples 0..99\) is missing"):
        ds["rbc"].split_indices("train")
    with pytest.raises(mdr.IntegrityError, match="is missing"):
        ds["rbc"].verify()


def test_tampered_split_labels_are_detected(dataset_copy):
    ds = mdr.open_dataset(dataset_copy)
    i = int(ds["nk"].split_indices("train")[0])
    arr = zarr.open_array(str(dataset_copy / "nk.zarr" / "split"), mode="r+")
    arr[i] = np.int8(1)  # move a train sample to val
    ds = mdr.open_dataset(dataset_copy)
    with pytest.raises(mdr.IntegrityError, match=r"world 'nk' split 'train': the stored labels give \d+ samples"):
        ds["nk"].split_indices("train")


def test_unsupported_hash_algorithm_cannot_be_verified(dataset_copy):
    _edit_manifest(dataset_copy, lambda d: d["hash"].update(algorithm="md5/v0"))
    ds = mdr.open_dataset(dataset_copy)
    assert ds["nk"]["theta"][0].shape == (12,)  # still readable
    with pytest.raises(mdr.IntegrityError, match="cannot verify: the manifest's hash algorithm is 'md5/v0'"):
        ds.verify()


def test_invalid_manifest_is_a_manifest_error(dataset_copy):
    from macro_data.errors import ManifestError

    (dataset_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        mdr.open_dataset(dataset_copy)
    (dataset_copy / "manifest.json").write_text(json.dumps({"schema_version": "1.0.0"}))
    with pytest.raises(ManifestError, match="does not match schemas/manifest.schema.json"):
        mdr.open_dataset(dataset_copy)


def test_stored_statistics_are_verified(stats_dataset, tmp_path):
    import shutil

    ds = mdr.open_dataset(stats_dataset, verify=True)
    hashes = ds.verify()
    manifest = json.loads((stats_dataset / "manifest.json").read_text())
    for w in ds.worlds:
        for a, spec in manifest["worlds"][w]["train_stats"]["arrays"].items():
            assert hashes[w][f"moments_{a}"] == spec["sha256"]
    copy = tmp_path / "copy"
    shutil.copytree(stats_dataset, copy)
    z = zarr.open_array(str(copy / "nk.zarr" / "moments_theta"), mode="r+")
    values = z[:]
    values[0, 2] += 0.5  # a well-formed chunk holding a different mean
    z[:] = values
    ds = mdr.open_dataset(copy)  # the cheap checks cannot see it
    with pytest.raises(mdr.IntegrityError, match="world 'nk' array 'moments_theta' .*content hash mismatch"):
        ds.verify()
    moment = copy / "rbc.zarr" / "moment"
    shutil.rmtree(moment)
    with pytest.raises(mdr.IntegrityError, match="world 'rbc': coordinate array 'moment'"):
        mdr.open_dataset(copy, worlds=["rbc"], verify=True)
