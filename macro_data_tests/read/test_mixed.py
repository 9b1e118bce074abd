"""Mixed-world batches: the contract (keys, shapes, dtypes, padding, masks), contents against direct zarr
reads of each world, regimes, history, normalization against numpy on the train split, the epoch, mixing,
target shocks, rank sharding, decoding and memory bounds, and the errors for bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

import macro_data.read as mdr
from macro_data_tests.read.conftest import build_plain

WORLDS = ("lss", "nk", "rbc")  # the fixtures' worlds, in the manifest's order
K = 5  # history length used below
POOL = {"theta": 1, "shocks": 2, "trajectories": 2, "irfs": 1}


def _train(ref, w):
    return np.flatnonzero(ref[(w, "split")] == 0)


def _numpy_stats(ref, w, a):
    x = ref[(w, a)][_train(ref, w)].astype(np.float64)
    x = x.reshape(-1, *x.shape[POOL[a] :])
    mean, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
    return mean, np.where(sd > 0, sd, 1.0)


def _expected_history(y, idx, start, k):
    """History rows computed the slow, obvious way: y[i, t] for t = start - k .. start - 1, zero before 0."""
    out = np.zeros((idx.size, k, 3), np.float32)
    mask = np.zeros((idx.size, k), bool)
    for r, (i, s) in enumerate(zip(idx, start)):
        for j, t in enumerate(range(s - k, s)):
            if t >= 0:
                out[r, j], mask[r, j] = y[i, t], True
    return out, mask


KEYS = {
    "A": {"theta", "theta_mask", "eps_sequence"},
    "B1": {"history", "history_mask"},
    "C": {"theta", "theta_mask", "history", "history_mask"},
    None: {"theta", "theta_mask", "eps_sequence", "history", "history_mask"},
}
COMMON = {"world_ids", "world_index", "irf", "irf_mask", "shock_idx", "index", "split"}


@pytest.mark.parametrize("regime", ["A", "B1", "C", None])
@pytest.mark.parametrize("windows", [False, True])
def test_contract_and_contents_against_direct_reads(ds, ref, regime, windows):
    T, H = ds.T, ds.H
    win = {"seq_len": 8, "stride": 6} if windows else {}
    history = None if regime == "A" else K
    view = ds.training_view(
        "train", batches="mixed", regime=regime, history=history, batch_size=64, seed=3, normalize=False, **win
    )
    assert (view.p_max, view.s_max) == (57, 3)  # lss has 57 parameters; nk and lss 3 shocks, rbc 2
    L = 8 if windows else T
    starts = np.arange(0, T - 8 + 1, 6) if windows else None
    seen = []
    names = {v: k for k, v in ds.manifest["split_labels"].items()}
    for batch in view.iter(0):
        B = batch["index"].size
        assert set(batch) == COMMON | KEYS[regime] | ({"start"} if windows else set())
        assert isinstance(batch["world_ids"], list) and isinstance(batch["split"], list)
        assert batch["world_index"].dtype == np.int64 and batch["shock_idx"].dtype == np.int64
        assert batch["irf"].shape == (B, 3, H + 1, 3) and batch["irf"].dtype == np.float32
        assert batch["irf_mask"].shape == (B, 3) and batch["irf_mask"].dtype == bool
        if "theta" in batch:
            assert batch["theta"].shape == (B, 57) and batch["theta"].dtype == np.float32
            assert batch["theta_mask"].shape == (B, 57) and batch["theta_mask"].dtype == bool
        if "eps_sequence" in batch:
            assert batch["eps_sequence"].shape == (B, L, 3) and batch["eps_sequence"].dtype == np.float32
        if "history" in batch:
            assert batch["history"].shape == (B, K, 3) and batch["history_mask"].shape == (B, K)
        worlds = np.array(batch["world_ids"])
        np.testing.assert_array_equal(batch["world_index"], [ds.available_worlds.index(w) for w in worlds])
        for w in set(batch["world_ids"]):
            g = np.flatnonzero(worlds == w)
            idx = batch["index"][g]
            P, S = len(ds[w].parameter_names), len(ds[w].shocks)
            st = batch["start"][g] if windows else np.zeros(g.size, np.int64)
            np.testing.assert_array_equal(batch["irf"][g, :S], ref[(w, "irfs")][idx])
            assert not batch["irf"][g, S:].any() and batch["irf_mask"][g].sum(1).tolist() == [S] * g.size
            assert 0 <= batch["shock_idx"][g].min() and batch["shock_idx"][g].max() < S
            assert [batch["split"][i] for i in g] == [names[int(v)] for v in ref[(w, "split")][idx]]
            if "theta" in batch:
                np.testing.assert_array_equal(batch["theta"][g, :P], ref[(w, "theta")][idx])
                assert not batch["theta"][g, P:].any() and (batch["theta_mask"][g].sum(1) == P).all()
            if "eps_sequence" in batch:
                rows = ref[(w, "shocks")][idx[:, None], st[:, None] + np.arange(L)[None, :]]
                np.testing.assert_array_equal(batch["eps_sequence"][g, :, :S], rows)
                assert not batch["eps_sequence"][g, :, S:].any()
            if "history" in batch:
                expect, mask = _expected_history(
                    ref[(w, "trajectories")], idx, st if windows else np.full(g.size, K), K
                )
                np.testing.assert_array_equal(batch["history"][g], expect)
                np.testing.assert_array_equal(batch["history_mask"][g], mask)
            if windows:
                assert set(st.tolist()) <= set(starts.tolist())
            seen += [(w, int(i), int(s)) for i, s in zip(idx, st)]
    # one epoch: every train item of every world exactly once
    expected = sorted((w, int(i), int(s)) for w in WORLDS for i in _train(ref, w) for s in (starts if windows else [0]))
    assert sorted(seen) == expected


def test_history_without_windows_is_the_first_k_periods(ds, ref):
    view = ds.training_view("val", batches="mixed", regime="B1", history=K, batch_size=40, normalize=False)
    for batch in view.iter(0):
        worlds = np.array(batch["world_ids"])
        for w in set(worlds):
            g = np.flatnonzero(worlds == w)
            np.testing.assert_array_equal(batch["history"][g], ref[(w, "trajectories")][batch["index"][g], :K])
            assert batch["history_mask"][g].all()


def test_windowed_history_is_padded_at_the_front(ds, ref):
    view = ds.training_view(
        "train", batches="mixed", regime="C", history=10, seq_len=4, stride=4, batch_size=500, worlds=["nk"]
    )
    batch = next(iter(view))
    st, idx = batch["start"], batch["index"]
    for s in (0, 4, 8, 12):  # 10 periods before start: 10 - s of them padded
        r = np.flatnonzero(st == s)[0]
        assert batch["history_mask"][r].tolist() == [False] * max(0, 10 - s) + [True] * min(10, s)
        if s:
            np.testing.assert_array_equal(batch["history"][r, -1], ref[("nk", "trajectories")][idx[r], s - 1])
        assert not batch["history"][r][~batch["history_mask"][r]].any()


def test_stats_normalization_against_numpy_on_the_train_split(ds, ref):
    view = ds.training_view(
        "val", batches="mixed", regime=None, history=K, batch_size=128, normalize="stats", normalize_outputs=True
    )
    for batch in view.iter(0):
        worlds = np.array(batch["world_ids"])
        for w in set(worlds):
            g = np.flatnonzero(worlds == w)
            idx = batch["index"][g]
            P, S = len(ds[w].parameter_names), len(ds[w].shocks)
            m, s = _numpy_stats(ref, w, "theta")  # every column, derived ones included
            np.testing.assert_allclose(batch["theta"][g, :P], (ref[(w, "theta")][idx] - m) / s, rtol=2e-5, atol=2e-5)
            m, s = _numpy_stats(ref, w, "irfs")
            np.testing.assert_allclose(batch["irf"][g, :S], (ref[(w, "irfs")][idx] - m) / s, rtol=2e-5, atol=2e-5)
            assert not batch["irf"][g, S:].any()
            m, s = _numpy_stats(ref, w, "shocks")
            np.testing.assert_allclose(
                batch["eps_sequence"][g, :, :S], (ref[(w, "shocks")][idx] - m) / s, rtol=2e-5, atol=2e-5
            )
            m, s = _numpy_stats(ref, w, "trajectories")
            np.testing.assert_allclose(
                batch["history"][g], (ref[(w, "trajectories")][idx, :K] - m) / s, rtol=2e-5, atol=2e-5
            )
        # the inverse transform gives natural units back (per world), from either world label
        natural = view.denormalize_irf(batch["irf"], batch["world_index"])
        assert np.array_equal(natural, view.denormalize_irf(batch["irf"], batch["world_ids"]))
        for w in set(worlds):
            g = np.flatnonzero(worlds == w)
            S = len(ds[w].shocks)
            np.testing.assert_allclose(natural[g, :S], ref[(w, "irfs")][batch["index"][g]], rtol=1e-5, atol=1e-6)
            assert not natural[g, S:].any()
        np.testing.assert_array_equal(natural, ds.denormalize_irf(batch["irf"], batch["world_ids"]))


def test_constant_columns_only_shift_and_the_maps_invert():
    """A column with sd 0 over the train split (e.g. zero padding) is shifted, not divided by 0."""
    entry = {
        "name": "toy",
        "parameters": [{"name": "a", "kind": "uniform"}, {"name": "pad", "kind": "derived"}],
        "split": "train",
        "n_samples": 10,
        "sha256": "0" * 64,
        "arrays": {
            "theta": {"dimension_names": ["moment", "param"], "pooled_over": ["sample"], "count": 10},
            "irfs": {
                "dimension_names": ["moment", "shock", "horizon", "observable"],
                "pooled_over": ["sample"],
                "count": 10,
            },
            "trajectories": {
                "dimension_names": ["moment", "observable"],
                "pooled_over": ["sample", "time"],
                "count": 80,
            },
            "shocks": {"dimension_names": ["moment", "shock"], "pooled_over": ["sample", "time"], "count": 80},
        },
    }
    irf = np.stack([np.full((1, 2, 3), 0.5), np.array([[[2.0, 0.0, 1.0], [4.0, 0.5, 0.0]]])])
    stored = {
        "theta": np.array([[1.0, 0.0], [2.0, 0.0]]),
        "irfs": irf,
        "trajectories": np.array([[0.1, 0.2, 0.3], [1.0, 2.0, 4.0]]),
        "shocks": np.array([[0.0], [1.0]]),
    }
    stats = mdr.WorldStats("toy", entry, stored)
    norm = mdr.ParameterNormalizer.from_stats(entry, stats)
    np.testing.assert_array_equal(norm.sd, [2.0, 1.0])
    np.testing.assert_allclose(norm.normalize(np.array([[3.0, 0.0], [1.0, 0.5]])), [[1.0, 0.0], [0.0, 0.5]])
    assert "shift only" in norm.rules[1]
    out = mdr.OutputNormalizer(stats)
    x = np.array([[[[2.5, 0.5, 1.5], [0.5, 1.0, 0.5]]]], dtype=np.float32)
    z = out.normalize_irf(x)
    np.testing.assert_allclose(z, [[[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]])  # sd 0 entries: x - mean
    np.testing.assert_allclose(out.denormalize_irf(z), x)
    assert z.dtype == np.float32 and np.isfinite(z).all()


def test_prior_normalization_and_identity_outputs(ds, ref):
    view = ds.training_view("val", batches="mixed", regime="A", batch_size=1000)
    batch = next(iter(view))
    worlds = np.array(batch["world_ids"])
    for w in set(worlds):
        g = np.flatnonzero(worlds == w)
        P = len(ds[w].parameter_names)
        expected = ds[w].normalizer().normalize(ref[(w, "theta")][batch["index"][g]])
        np.testing.assert_allclose(batch["theta"][g, :P], expected, rtol=1e-6, atol=1e-6)
    # without normalize_outputs the inverse is the identity
    np.testing.assert_array_equal(view.denormalize_irf(batch["irf"], batch["world_ids"]), batch["irf"])


def test_epoch_order_is_deterministic_and_batches_mix_worlds(ds):
    def plan(**kw):
        view = ds.training_view("train", batches="mixed", regime="A", batch_size=50, **kw)
        return [(w.tolist(), i.tolist()) for w, i, _ in view.plan(0 if "epoch" not in kw else 0)]

    a = plan(seed=1)
    assert a == plan(seed=1) and a != plan(seed=2)
    view = ds.training_view("train", batches="mixed", regime="A", batch_size=50, seed=1)
    assert [(w.tolist(), i.tolist()) for w, i, _ in view.plan(1)] != a
    assert sum(len(set(w)) > 1 for w, _ in a) > len(a) // 2  # most batches hold several worlds
    sizes = [len(i) for _, i in a]
    n = sum(view.n_items.values())
    assert len(view) == len(a) == math.ceil(n / 50) and sizes[:-1] == [50] * (len(a) - 1)
    drop = ds.training_view("train", batches="mixed", regime="A", batch_size=50, seed=1, drop_last=True)
    assert len(drop) == n // 50 and {b["index"].size for b in drop.iter(0)} == {50}


def test_world_composition_is_proportional_over_the_epoch(ds):
    view = ds.training_view("train", batches="mixed", regime="A", batch_size=100, seed=0)
    per_batch = [Counter(w.tolist()) for w, _, _ in view.plan(0)]
    total = sum(per_batch, Counter())
    assert {view.worlds[k]: v for k, v in total.items()} == view.n_items
    # early batches already mix in proportion (hypergeometric draws), not world after world
    first = sum(per_batch[:5], Counter())
    share = {view.worlds[k]: v / 500 for k, v in first.items()}
    n = sum(view.n_items.values())
    for w, c in view.n_items.items():
        assert abs(share.get(w, 0) - c / n) < 0.12


def test_weighted_mixed_batches(ds):
    view = ds.training_view(
        "train", batches="mixed", regime="A", batch_size=64, mixing={"nk": 3, "rbc": 1}, num_batches=60, seed=2
    )
    assert view.worlds == ("nk", "rbc") and len(view) == 60
    counts = Counter()
    for batch in view.iter(0):
        assert batch["index"].size == 64
        counts.update(batch["world_ids"])
    assert sum(counts.values()) == 3840 and abs(counts["nk"] / 3840 - 0.75) < 0.04


def test_target_shocks_are_uniform_per_item_and_independent_of_order(ds):
    def shocks(**kw):
        out = {}
        for batch in ds.training_view("train", batches="mixed", regime="A", seed=4, **kw).iter(0):
            for w, i, s in zip(batch["world_ids"], batch["index"].tolist(), batch["shock_idx"].tolist()):
                out[(w, i)] = s
        return out

    a = shocks(batch_size=64)
    assert a == shocks(batch_size=17, shuffle="global") == shocks(batch_size=300, shuffle="none")
    for w in WORLDS:
        S = len(ds[w].shocks)
        c = Counter(s for (w2, _), s in a.items() if w2 == w)
        n = sum(c.values())
        assert set(c) == set(range(S))
        assert max(abs(v - n / S) for v in c.values()) < 4 * math.sqrt(n / S)
    epoch1 = {}
    for batch in ds.training_view("train", batches="mixed", regime="A", seed=4, batch_size=64).iter(1):
        epoch1.update(zip(zip(batch["world_ids"], batch["index"].tolist()), batch["shock_idx"].tolist()))
    assert epoch1.keys() == a.keys() and epoch1 != a  # a fresh draw every epoch
    first = ds.training_view("train", batches="mixed", regime="A", target_shock="first", batch_size=500)
    assert all(not b["shock_idx"].any() for b in first.iter(0))


def test_leave_one_world_out_and_fixed_widths(ds):
    train = ds.training_view("train", batches="mixed", regime="A", exclude_worlds=["lss"], batch_size=64)
    assert train.worlds == ("nk", "rbc") and (train.p_max, train.s_max) == (12, 3)
    wide = ds.training_view(
        "train", batches="mixed", regime="A", exclude_worlds=["lss"], p_max=ds.p_max, s_max=ds.s_max
    )
    held = ds.training_view("test_interpolation", batches="mixed", regime="A", worlds=["lss"], p_max=ds.p_max)
    assert next(iter(wide))["theta"].shape[1] == next(iter(held))["theta"].shape[1] == 57
    assert {w for b in train.iter(0) for w in b["world_ids"]} == {"nk", "rbc"}
    assert set(next(iter(held))["world_index"].tolist()) == {ds.available_worlds.index("lss")}


def test_rank_shards_are_disjoint_equal_and_cover_the_epoch(ds):
    view = ds.training_view("train", batches="mixed", regime="A", batch_size=30, seed=5)
    whole = [(w.tolist(), i.tolist()) for w, i, _ in view.plan(0)]
    R = 3
    per = len(whole) // R
    shards = [[(w.tolist(), i.tolist()) for w, i, _ in view.plan(0, ranks=(r, R))] for r in range(R)]
    assert [len(s) for s in shards] == [per] * R == [view.batches_for(ranks=(r, R)) for r in range(R)]
    assert sum(shards, []) == whole[: R * per]  # contiguous blocks, in order, disjoint
    workers = [[i for _, i, _ in view.plan(0, shard=(k, 2), ranks=(1, R))] for k in range(2)]
    assert sorted(sum((list(map(tuple, w)) for w in workers), [])) == sorted(tuple(i) for _, i in shards[1])
    got = [b["index"].tolist() for b in view.iter(0, ranks=(2, R))]
    assert got == [i for _, i in shards[2]]


def test_chunk_shuffle_decodes_each_chunk_once_per_epoch(ds, ref):
    view = ds.training_view("train", batches="mixed", regime="C", history=K, batch_size=32, buffer_chunks=2)
    stats = mdr.ReadStats()
    n = sum(1 for _ in view.iter(0, stats=stats))
    assert n == len(view) == stats.batches
    assert set(stats.chunk_reads.values()) == {1}
    for w in WORLDS:
        chunks = set((_train(ref, w) // 100).tolist())
        for a in ("theta", "trajectories", "irfs", "split"):
            assert {c for (w2, a2, c) in stats.chunk_reads if (w2, a2) == (w, a)} == chunks
    assert not any(a == "shocks" for _, a, _ in stats.chunk_reads)  # regime C reads no innovations


@pytest.fixture(scope="module")
def sizes(tmp_path_factory):
    """rbc and nk at two sizes (1,500 and 6,000 samples each), T=64, chunks of 100: epochs of 4x the data."""
    return {
        n: build_plain(
            tmp_path_factory.mktemp(f"mixmem{n}"),
            {"rbc": {"n_samples": n}, "nk": {"n_samples": n}},
            64,
            6,
            100,
            name=f"mixmem{n}",
        )
        for n in (1500, 6000)
    }


# One epoch of mixed batches under tracemalloc, in a fresh interpreter: tracemalloc counts the
# allocations of every thread of the process, and threads other tests leave behind in a pytest
# worker are not the reader's (one such run measured 9.4 MB where the reader alone takes 1.7 MB).
EPOCH_PEAK = """
import json, sys, tracemalloc
import macro_data.read as mdr
data = mdr.open_dataset(sys.argv[1])
view = data.training_view("train", batches="mixed", regime=None, history=8, batch_size=64, buffer_chunks=2)
arrays = ("theta", "shocks", "trajectories", "irfs")
rows = 0
tracemalloc.start()
for batch in view.iter(0):
    rows += batch["index"].size
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(json.dumps({
    "peak": peak,
    "rows": rows,
    "items": sum(view.n_items.values()),
    "chunk_bytes": sum(data[w][a].chunk_nbytes for w in data.worlds for a in arrays),
    "total": sum(data[w][a].nbytes for w in data.worlds for a in arrays),
}))
"""


def test_memory_is_bounded_by_buffers_not_by_n(sizes):
    peaks = {}
    for n, path in sizes.items():
        out = subprocess.run([sys.executable, "-c", EPOCH_PEAK, str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        m = json.loads(out.stdout)
        assert m["rows"] == m["items"]
        # at most 2 * buffer_chunks chunks per array per world, plus the batch and a few chunks of decoding
        assert m["peak"] < (2 * 2 + 4) * m["chunk_bytes"], (n, m)
        peaks[n] = (m["peak"], m["total"])
    assert peaks[6000][1] > 3.5 * peaks[1500][1]  # four times the data...
    assert peaks[6000][0] < 1.5 * peaks[1500][0]  # ...about the same peak


def test_bad_arguments_name_the_argument_and_the_allowed_values(ds, read_dataset):
    make = ds.training_view
    cases = [
        (dict(batches="both"), "batches must be one of world, mixed; got 'both'"),
        (dict(batches="mixed", regime="D"), "regime must be one of 'A', 'B1', 'C' or None; got 'D'"),
        (dict(batches="mixed", regime="B1"), r"regime 'B1' gives observed history: pass history=k \(1 <= k <= 32\)"),
        (dict(batches="mixed", regime="C", history=33), r"history must be <= T = 32 .*got 33"),
        (dict(batches="mixed", regime="C", history=0), "history must be a positive integer; got 0"),
        (dict(batches="mixed", regime="A", history=4), "regime 'A' has no observed history"),
        (dict(batches="mixed", seq_len=40), r"seq_len must be <= T = 32 \(trajectory length\); got 40"),
        (dict(batches="mixed", worlds=["nk", "var"]), "worlds: unknown world 'var'; opened worlds: lss, nk, rbc"),
        (
            dict(batches="mixed", exclude_worlds=["zlb"]),
            "exclude_worlds: unknown world 'zlb'; opened worlds: lss, nk, rbc",
        ),
        (
            dict(batches="mixed", exclude_worlds=["lss", "nk", "rbc"]),
            r"no world selected after exclude_worlds=\['lss', 'nk', 'rbc'\].*the dataset's worlds: lss, nk, rbc",
        ),
        (dict(batches="mixed", target_shock="all"), "target_shock must be one of 'uniform', 'first'; got 'all'"),
        (dict(batches="mixed", p_max=10), "p_max must be an integer >= 57; got 10"),
        (dict(batches="mixed", arrays=("theta",)), "arrays applies to batches='world'"),
        (dict(regime="A"), "regime='A' applies to mixed batches: pass batches='mixed'"),
        (dict(history=3), "history=3 applies to mixed batches"),
        (dict(normalize_outputs=True), "normalize_outputs=True applies to mixed batches"),
        (dict(normalize="zscore"), "normalize must be True, False, one of 'prior', 'stats'"),
    ]
    for kwargs, message in cases:
        with pytest.raises(mdr.ReadArgumentError, match=message):
            make("train", **kwargs)
    # statistics asked of a dataset built without them
    plain = mdr.open_dataset(read_dataset)
    assert not plain.has_stats and ds.has_stats
    for kwargs, what in (
        (dict(normalize="stats"), "normalize='stats'"),
        (dict(normalize_outputs=True), "normalize_outputs=True"),
    ):
        with pytest.raises(mdr.ReadArgumentError, match=rf"{what}: world 'lss' .* was built without output statistics"):
            plain.training_view("train", batches="mixed", **kwargs)
    with pytest.raises(mdr.ReadArgumentError, match="use normalize=True"):
        _ = plain["nk"].stats
    view = make("train", batches="mixed")
    with pytest.raises(mdr.ReadArgumentError, match="rank index must be < rank count 2; got 2"):
        view.iter(0, ranks=(2, 2))
    with pytest.raises(mdr.ReadArgumentError, match=r"irf must have shape \(B, S, 7, 3\)"):
        view.denormalize_irf(np.zeros((2, 3, 5, 3)), ["nk", "nk"])
    with pytest.raises(mdr.ReadArgumentError, match="worlds: world 'var' is not an opened world"):
        view.denormalize_irf(np.zeros((1, 3, 7, 3)), ["var"])
