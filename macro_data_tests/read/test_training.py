"""Training views: batch contents, permutations, determinism, windows, mixing, I/O and memory bounds."""

from __future__ import annotations

import math
import tracemalloc
from collections import Counter

import numpy as np
import pytest
import zarr

import macro_data.read as mdr
from macro_data_tests.read.conftest import build_plain

WORLDS = ["nk", "rbc"]
ARRAYS = ("theta", "shocks", "trajectories", "irfs")


@pytest.fixture(scope="module")
def ds(read_dataset):
    return mdr.open_dataset(read_dataset)


@pytest.fixture(scope="module")
def full(read_dataset):
    """Every array of nk and rbc read directly with zarr: the reference."""
    return {
        (w, a): zarr.open_array(str(read_dataset / f"{w}.zarr" / a), mode="r")[...]
        for w in WORLDS
        for a in (*ARRAYS, "split", "extras")
        if (read_dataset / f"{w}.zarr" / a).exists()
    }


def _split(full, world, label):
    return np.flatnonzero(full[(world, "split")] == label)


@pytest.mark.parametrize("shuffle", ["chunks", "global", "none"])
def test_epoch_is_a_permutation_of_each_split_with_exact_values(ds, full, shuffle):
    B = 48
    view = ds.training_view("train", batch_size=B, worlds=WORLDS, seed=3, shuffle=shuffle)
    seen = {w: [] for w in WORLDS}
    sizes = {w: [] for w in WORLDS}
    for world, batch in view.iter(epoch=0):
        i = batch["index"]
        seen[world].append(i)
        sizes[world].append(i.size)
        for a in ARRAYS:
            assert batch[a].dtype == np.float32
            np.testing.assert_array_equal(batch[a], full[(world, a)][i])
        assert set(batch) == {"index", *ARRAYS, "theta_normalized"}
    for w in WORLDS:
        split = _split(full, w, 0)
        got = np.concatenate(seen[w])
        assert got.size == split.size and np.array_equal(np.sort(got), split)  # each train sample exactly once
        n_batches = math.ceil(split.size / B)
        assert len(sizes[w]) == n_batches == view.counts[w]
        assert sizes[w][:-1] == [B] * (n_batches - 1) and sizes[w][-1] == split.size - B * (n_batches - 1)
        if shuffle == "none":
            np.testing.assert_array_equal(got, split)
        else:
            assert not np.array_equal(got, split)
    assert len(view) == sum(math.ceil(_split(full, w, 0).size / B) for w in WORLDS)


def _plan(view, epoch=0):
    return [(w, i.tolist(), None if s is None else s.tolist()) for w, i, s in view.plan(epoch)]


def test_order_is_deterministic_per_seed_and_epoch(ds):
    make = lambda **kw: ds.training_view("train", batch_size=40, worlds=WORLDS, **kw)  # noqa: E731
    for shuffle in ("chunks", "global"):
        a = _plan(make(seed=5, shuffle=shuffle))
        assert a == _plan(make(seed=5, shuffle=shuffle))
        assert a != _plan(make(seed=6, shuffle=shuffle))
        assert a != _plan(make(seed=5, shuffle=shuffle), epoch=1)
        assert _plan(make(seed=5, shuffle=shuffle), epoch=1) == _plan(make(seed=5, shuffle=shuffle), epoch=1)
    # the data follows the plan
    view = make(seed=5)
    for (w, i, _), (w2, batch) in zip(view.plan(2), view.iter(2)):
        assert w == w2 and np.array_equal(i, batch["index"])


def test_a_worlds_order_does_not_depend_on_the_other_worlds(ds):
    mixed = [i for w, i, _ in _plan(ds.training_view("train", batch_size=32, worlds=WORLDS, seed=9)) if w == "nk"]
    alone = [i for _, i, _ in _plan(ds.training_view("train", batch_size=32, worlds=["nk"], seed=9))]
    assert mixed == alone


def test_sharding_partitions_the_epoch(ds):
    view = ds.training_view("train", batch_size=32, worlds=WORLDS, seed=1)
    whole = _plan(view)
    shards = [[(w, i.tolist(), None) for w, i, _ in view.plan(0, shard=(k, 3))] for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(whole)
    assert shards[1] == whole[1::3]


@pytest.mark.parametrize("shuffle", ["chunks", "global"])
def test_windows_against_manual_slicing(ds, full, shuffle):
    L, stride, T = 8, 5, 32
    starts = list(range(0, T - L + 1, stride))
    assert starts == [0, 5, 10, 15, 20]
    view = ds.training_view(
        "val", batch_size=25, worlds=WORLDS, seed=2, seq_len=L, stride=stride, shuffle=shuffle, arrays=(*ARRAYS,)
    )
    pairs = {w: Counter() for w in WORLDS}
    for world, batch in view.iter(0):
        i, s = batch["index"], batch["start"]
        assert batch["trajectories"].shape == (i.size, L, 3)
        for r in range(i.size):  # reference: plain slicing, one window at a time
            pairs[world][(int(i[r]), int(s[r]))] += 1
            np.testing.assert_array_equal(
                batch["trajectories"][r], full[(world, "trajectories")][i[r], s[r] : s[r] + L]
            )
            np.testing.assert_array_equal(batch["shocks"][r], full[(world, "shocks")][i[r], s[r] : s[r] + L])
            np.testing.assert_array_equal(batch["irfs"][r], full[(world, "irfs")][i[r]])
            np.testing.assert_array_equal(batch["theta"][r], full[(world, "theta")][i[r]])
    for w in WORLDS:
        expected = {(int(i), s) for i in _split(full, w, 1) for s in starts}
        assert set(pairs[w]) == expected and set(pairs[w].values()) == {1}
        assert view.n_items[w] == len(expected)


def test_window_defaults_and_full_length(ds, full):
    view = ds.training_view(
        "train", batch_size=64, worlds=["rbc"], seq_len=10, arrays=("trajectories", "extras"), normalize=False
    )
    assert view.stride == 10
    starts = set()
    for _, batch in view.iter(0):
        starts |= set(batch["start"].tolist())
        i, s = batch["index"], batch["start"]
        np.testing.assert_array_equal(batch["extras"][0], full[("rbc", "extras")][i[0], s[0] : s[0] + 10])
    assert starts == {0, 10, 20}
    whole = ds.training_view("train", batch_size=64, worlds=["rbc"], seq_len=32, shuffle="none")
    _, batch = next(iter(whole))
    assert set(batch["start"].tolist()) == {0}
    np.testing.assert_array_equal(batch["trajectories"], full[("rbc", "trajectories")][batch["index"]])


def test_proportional_mixing_counts_and_interleaving(ds, full):
    B = 20
    view = ds.training_view("train", batch_size=B, worlds=WORLDS, seed=4)
    sched = view.schedule(0)
    for w in WORLDS:
        assert Counter(sched)[w] == math.ceil(_split(full, w, 0).size / B)
    assert sched != tuple(sorted(sched))  # interleaved, not world after world
    assert view.schedule(1) != sched and view.schedule(0) == sched
    drop = ds.training_view("train", batch_size=B, worlds=WORLDS, seed=4, drop_last=True)
    for w in WORLDS:
        assert drop.counts[w] == _split(full, w, 0).size // B
    assert {b["index"].size for _, b in drop.iter(0)} == {B}


def test_the_schedule_is_the_seeded_permutation_of_its_worlds_batches(ds):
    # The order users train in is a function of (seed, epoch): the worlds' batches, world after world,
    # permuted by the schedule stream. Computed here the direct way, an index permutation.
    from macro_data.read.training import SCHEDULE_KEY

    for seed, mixing, n in ((0, "proportional", None), (4, "uniform", 501), (11, {"nk": 3, "rbc": 1}, 1234)):
        view = ds.training_view("train", batch_size=16, worlds=WORLDS, seed=seed, mixing=mixing, num_batches=n)
        for epoch in (0, 1, 7):
            seq = np.repeat(np.arange(len(view.worlds)), [view.counts[w] for w in view.worlds])
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(SCHEDULE_KEY, epoch))))
            expected = tuple(view.worlds[i] for i in seq[rng.permutation(seq.size)])
            assert view.schedule(epoch) == expected, (seed, mixing, n, epoch)


@pytest.mark.slow
def test_the_longest_epoch_is_scheduled_in_bounded_memory(ds):
    from macro_data.read.training import MAX_NUM_BATCHES

    view = ds.training_view("train", batch_size=16, worlds=WORLDS, mixing="uniform", num_batches=MAX_NUM_BATCHES)
    tracemalloc.start()
    try:
        schedule = view.schedule(0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(schedule) == MAX_NUM_BATCHES
    # the schedule itself, a pointer per batch, and one byte per batch to shuffle it (not 3 x 8 bytes)
    assert peak < 8 * MAX_NUM_BATCHES + 2 * MAX_NUM_BATCHES, peak


def test_weighted_and_uniform_mixing(ds, full):
    uniform = ds.training_view("train", batch_size=16, mixing="uniform", num_batches=30, worlds=WORLDS)
    assert Counter(uniform.schedule(0)) == {"nk": 15, "rbc": 15}
    # 41 batches at weights 3:1 -> 30.75 and 10.25 -> 30 + 10, the leftover to the larger remainder (nk)
    weighted = ds.training_view("train", batch_size=16, mixing={"nk": 3, "rbc": 1}, num_batches=41)
    assert weighted.worlds == ("nk", "rbc")
    assert Counter(weighted.schedule(0)) == {"nk": 31, "rbc": 10}
    assert Counter(w for w, _ in weighted.iter(0)) == {"nk": 31, "rbc": 10}
    # default epoch length for weighted mixing: the proportional epoch's
    default = ds.training_view("train", batch_size=16, mixing="uniform", worlds=WORLDS)
    assert len(default) == sum(math.ceil(_split(full, w, 0).size / 16) for w in WORLDS)
    only_nk = ds.training_view("train", batch_size=16, mixing={"nk": 1.0, "rbc": 0})
    assert only_nk.worlds == ("nk",)


def test_weighted_world_cycles_through_reshuffled_passes(ds, full):
    split = _split(full, "rbc", 1)  # val
    B = 10
    per_pass = math.ceil(split.size / B)
    view = ds.training_view("val", batch_size=B, mixing={"rbc": 1}, num_batches=3 * per_pass, seed=8)
    batches = [i for _, i, _ in view.plan(0)]
    passes = [np.concatenate(batches[k * per_pass : (k + 1) * per_pass]) for k in range(3)]
    for p in passes:
        assert np.array_equal(np.sort(p), split)
    assert not np.array_equal(passes[0], passes[1])


def test_normalized_theta_matches_the_closed_form(ds, full):
    view = ds.training_view("train", batch_size=100, worlds=["nk"])
    names = ds["nk"].parameter_names
    j = names.index("phi_pi")
    _, batch = next(iter(view))
    z = batch["theta_normalized"]
    expected = (full[("nk", "theta")][batch["index"], j].astype(np.float64) - 2.1) / (1.8 / np.sqrt(12))
    np.testing.assert_allclose(z[:, j], expected, rtol=1e-6, atol=1e-6)
    assert np.all(np.abs(z) <= np.sqrt(3) + 1e-5)  # every stored draw lies inside its prior
    wide = ds.training_view("train", batch_size=100, worlds=["nk"], bounds="parameters")
    _, batch2 = next(iter(wide))
    expected2 = (full[("nk", "theta")][batch2["index"], j].astype(np.float64) - 2.275) / (2.45 / np.sqrt(12))
    np.testing.assert_allclose(batch2["theta_normalized"][:, j], expected2, rtol=1e-6, atol=1e-6)
    raw = ds.training_view("train", batch_size=100, worlds=["nk"], normalize=False)
    assert "theta_normalized" not in next(iter(raw))[1]


def test_chunk_shuffle_decodes_each_chunk_once_per_epoch(ds, full):
    view = ds.training_view("train", batch_size=32, worlds=WORLDS, seed=0, shuffle="chunks", buffer_chunks=2)
    stats = mdr.ReadStats()
    n = sum(1 for _ in view.iter(0, stats=stats))
    assert stats.batches == n == len(view)
    assert set(stats.chunk_reads.values()) == {1}
    for w in WORLDS:
        chunks = set((_split(full, w, 0) // 100).tolist())
        for a in ARRAYS:
            assert {c for (w2, a2, c) in stats.chunk_reads if (w2, a2) == (w, a)} == chunks
    # global shuffle touches many chunks per batch: more decoding for the same epoch
    stats_global = mdr.ReadStats()
    for _ in ds.training_view("train", batch_size=32, worlds=WORLDS, seed=0, shuffle="global").iter(
        0, stats=stats_global
    ):
        pass
    assert stats_global.total_chunk_reads > 2 * stats.total_chunk_reads


def test_bad_arguments_name_the_argument_and_value(ds):
    make = ds.training_view
    cases = [
        (dict(batch_size=0), "batch_size must be a positive integer; got 0"),
        (dict(batch_size=-3), "batch_size must be a positive integer; got -3"),
        (dict(batch_size=2.5), "batch_size must be a positive integer; got 2.5"),
        (dict(batch_size=True), "batch_size must be a positive integer; got True"),
        (dict(seq_len=33), r"seq_len must be <= T = 32 \(trajectory length\); got 33"),
        (dict(seq_len=0), "seq_len must be a positive integer; got 0"),
        (dict(seq_len=8, stride=0), "stride must be a positive integer; got 0"),
        (dict(seq_len=8, stride=-1), "stride must be a positive integer; got -1"),
        (dict(stride=2), "stride=2 given without seq_len"),
        (dict(worlds=["nk", "var"]), "worlds: unknown world 'var'"),
        (dict(mixing="random"), "mixing must be one of proportional, uniform or a mapping"),
        (dict(mixing={"nk": -1}), "weight of world 'nk' must be a finite number >= 0; got -1"),
        (dict(mixing={"nk": 0.0}, worlds=["nk"]), "sum to 0.0"),
        (dict(num_batches=5), "num_batches=5 applies to weighted mixing"),
        (dict(mixing="uniform", num_batches=0), "num_batches must be a positive integer; got 0"),
        (dict(shuffle="yes"), "shuffle must be one of chunks, global, none; got 'yes'"),
        (dict(worlds=["nk"], arrays=("theta", "extras")), "world 'nk' has no array 'extras'"),
        (dict(arrays=("trajectories",)), "normalize needs 'theta'"),
        (dict(seed=-1), "seed must be an integer >= 0; got -1"),
        (dict(buffer_chunks=0), "buffer_chunks must be a positive integer; got 0"),
        (dict(bounds="wide"), "bounds: 'wide' is not one of prior, parameters"),
    ]
    for kwargs, message in cases:
        with pytest.raises(mdr.ReadArgumentError, match=message):
            make("train", **kwargs)
    with pytest.raises(mdr.ReadArgumentError, match="unknown split 'tests'"):
        make("tests")
    view = make("train", worlds=["nk"])
    with pytest.raises(mdr.ReadArgumentError, match="epoch must be an integer >= 0; got -1"):
        view.iter(-1)
    with pytest.raises(mdr.ReadArgumentError, match="shard index must be < shard count 2; got 2"):
        view.iter(0, shard=(2, 2))
    with pytest.raises(ValueError):  # ReadArgumentError is also a ValueError
        make("train", batch_size=0)


@pytest.fixture(scope="module")
def bigger(tmp_path_factory):
    """rbc, 6000 samples of T=64 in chunks of 100: the arrays are ~9 MB."""
    return mdr.open_dataset(
        build_plain(tmp_path_factory.mktemp("mem"), {"rbc": {"n_samples": 6000}}, 64, 6, 100, name="mem")
    )


@pytest.mark.parametrize("buffer_chunks", [1, 3])
def test_memory_is_bounded_by_buffer_not_array_size(bigger, buffer_chunks):
    rbc = bigger["rbc"]
    total = sum(rbc[a].nbytes for a in ARRAYS)
    chunk_bytes = sum(rbc[a].nbytes / rbc[a].n_chunks for a in ARRAYS)
    view = bigger.training_view("train", batch_size=32, seed=0, buffer_chunks=buffer_chunks)
    rows = 0
    tracemalloc.start()
    try:
        for _, batch in view.iter(0):
            rows += batch["index"].size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == rbc.split_sizes["train"] > 4000
    # the cache holds buffer_chunks chunks per array; decoding and the batch take a few chunk sizes more
    assert peak < (buffer_chunks + 5) * chunk_bytes, (peak, chunk_bytes)
    assert peak < total / 6, (peak, total)
