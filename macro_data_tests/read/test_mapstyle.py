"""Map-style random access: items and batches against direct zarr reads, the byte-bounded cache, and the
same target shocks as the iterable view."""

from __future__ import annotations

import numpy as np
import pytest

import macro_data.read as mdr

WORLDS = ("lss", "nk", "rbc")


def _items(ref, split_label=0):
    """The map-style index space, built independently: worlds in manifest order, samples in order."""
    return [(w, int(i)) for w in WORLDS for i in np.flatnonzero(ref[(w, "split")] == split_label)]


def test_len_and_items_follow_the_worlds_in_order(ds, ref):
    mds = ds.map_dataset("train", regime="C", history=4, normalize=False)
    items = _items(ref)
    assert len(mds) == len(items)
    assert mds.offsets == {
        w: (items.index(next(x for x in items if x[0] == w)), max(k for k, x in enumerate(items) if x[0] == w) + 1)
        for w in WORLDS
    }
    rng = np.random.default_rng(0)
    picks = rng.permutation(len(mds))[:300].tolist() + [-1, 0]
    batch = mds.__getitems__(picks)
    for b, p in enumerate(picks):
        w, i = items[p]
        assert (batch["world_ids"][b], int(batch["index"][b])) == (w, i)
        P, S = len(ds[w].parameter_names), len(ds[w].shocks)
        np.testing.assert_array_equal(batch["theta"][b, :P], ref[(w, "theta")][i])
        np.testing.assert_array_equal(batch["irf"][b, :S], ref[(w, "irfs")][i])
        np.testing.assert_array_equal(batch["history"][b], ref[(w, "trajectories")][i, :4])
        assert not batch["irf"][b, S:].any() and not batch["theta"][b, P:].any()
    one = mds[picks[7]]
    assert one["world_ids"] == batch["world_ids"][7] and one["index"] == batch["index"][7]
    assert isinstance(one["world_index"], int) and isinstance(one["shock_idx"], int)
    np.testing.assert_array_equal(one["irf"], batch["irf"][7])
    assert one["theta"].shape == (57,) and one["history_mask"].shape == (4,)


def test_windowed_items(ds, ref):
    mds = ds.map_dataset("val", regime="A", seq_len=10, stride=10, normalize=False)
    n_val = sum(int((ref[(w, "split")] == 1).sum()) for w in WORLDS)
    assert len(mds) == 3 * n_val  # starts 0, 10, 20
    batch = mds.__getitems__(list(range(0, len(mds), 7)))
    for b in range(batch["index"].size):
        w, i, s = batch["world_ids"][b], batch["index"][b], batch["start"][b]
        S = len(ds[w].shocks)
        np.testing.assert_array_equal(batch["eps_sequence"][b, :, :S], ref[(w, "shocks")][i, s : s + 10])


def test_same_target_shocks_as_the_iterable_view(ds):
    options = dict(regime="A", seed=7, normalize="stats", normalize_outputs=True)
    view = ds.training_view("train", batches="mixed", batch_size=64, **options)
    mds = ds.map_dataset("train", **options)
    mds.set_epoch(2)
    lookup = {}
    for batch in view.iter(2):
        for k, (w, i) in enumerate(zip(batch["world_ids"], batch["index"].tolist())):
            lookup[(w, i)] = (batch["shock_idx"][k], batch["irf"][k], batch["theta"][k])
    got = mds.__getitems__(np.arange(len(mds)))
    for k, (w, i) in enumerate(zip(got["world_ids"], got["index"].tolist())):
        shock, irf, theta = lookup[(w, i)]
        assert got["shock_idx"][k] == shock
        np.testing.assert_array_equal(got["irf"][k], irf)
        np.testing.assert_array_equal(got["theta"][k], theta)


def test_cache_is_bounded_in_bytes(ds):
    chunk = ds["nk"]["shocks"].chunk_nbytes
    small = ds.map_dataset("train", regime="A", cache_bytes=3 * chunk)
    small.stats = mdr.ReadStats()
    order = np.random.default_rng(1).permutation(len(small))
    peak = 0
    for lo in range(0, order.size, 64):
        small.__getitems__(order[lo : lo + 64])
        peak = max(peak, small.cache.nbytes)
    assert peak <= 3 * chunk + ds["lss"]["shocks"].chunk_nbytes  # the bound, plus the chunk being read
    big = ds.map_dataset("train", regime="A", cache_bytes=1 << 30)
    big.stats = mdr.ReadStats()
    for lo in range(0, order.size, 64):
        big.__getitems__(order[lo : lo + 64])
    assert set(big.stats.chunk_reads.values()) == {1}  # everything fits: each chunk decoded once
    assert small.stats.total_chunk_reads > 2 * big.stats.total_chunk_reads  # a small cache re-decodes


def test_bad_indices_and_views(ds):
    mds = ds.map_dataset("train", regime="A")
    n = len(mds)
    with pytest.raises(mdr.ReadArgumentError, match=f"index {n} out of range for {n} items"):
        mds.__getitems__([0, n])
    with pytest.raises(mdr.ReadArgumentError, match="indices must be a 1-d sequence of integers"):
        mds.__getitems__([0.5])
    with pytest.raises(mdr.ReadArgumentError, match="index must be an integer; got '3'"):
        mds["3"]
    with pytest.raises(mdr.ReadArgumentError, match="cache_bytes must be a positive integer; got 0"):
        ds.map_dataset("train", cache_bytes=0)
    with pytest.raises(mdr.ReadArgumentError, match="a map-style dataset serves mixed batches"):
        mdr.MapDataset(ds.training_view("train"))
    with pytest.raises(mdr.ReadArgumentError, match="epoch must be an integer >= 0; got -1"):
        mds.set_epoch(-1)


@pytest.mark.parametrize("span", [1, 3, 40])
def test_chunk_groups_partition_the_rows(span):
    from macro_data.read.batches import chunk_groups

    rng = np.random.default_rng(span)
    for _ in range(20):
        index = rng.integers(500, 500 + span * 100, size=int(rng.integers(1, 300)))
        groups = chunk_groups(index, 100)
        positions = np.concatenate([np.arange(index.size) if g is None else g for _, g in groups])
        assert sorted(positions.tolist()) == list(range(index.size))  # every row once
        for c, g in groups:
            assert (index[slice(None) if g is None else g] // 100 == c).all()
        assert [c for c, _ in groups] == sorted({int(c) for c in index // 100})
