"""evaluate(): metrics per world and horizon against an independent numpy computation, the two baselines
against brute force, JSON output, and what predict() receives."""

from __future__ import annotations

import json

import numpy as np
import pytest

import macro_data.read as mdr

WORLDS = ("lss", "nk", "rbc")
LABELS = {"train": 0, "val": 1, "test_interpolation": 2, "test_extrapolation_slice": 3, "test_extrapolation_corner": 4}


def _metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    """rmse and relative error per horizon, written out with numpy: (n, S, H+1, 3) arrays."""
    e = pred.astype(np.float64) - truth.astype(np.float64)
    rmse = np.sqrt((e**2).mean(axis=(0, 1, 3)))
    rel = np.sqrt((e**2).sum(axis=(0, 1, 3))) / np.sqrt((truth.astype(np.float64) ** 2).sum(axis=(0, 1, 3)))
    return {"rmse": rmse, "relative_error": rel, "rmse_all": np.sqrt((e**2).mean())}


def _oracle(ref, ds, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)

    def predict(batch):
        assert "irf" not in batch and "irf_mask" in batch  # the target is withheld
        out = np.zeros((batch["index"].size, ds.s_max, ds.H + 1, 3), np.float32)
        for b, (w, i) in enumerate(zip(batch["world_ids"], batch["index"])):
            S = len(ds[w].shocks)
            out[b, :S] = ref[(w, "irfs")][i] + noise * rng.standard_normal((S, ds.H + 1, 3))
        return out

    return predict


def test_perfect_prediction_scores_zero_and_output_is_json(ds, ref):
    report = mdr.evaluate(_oracle(ref, ds), ds, "test_interpolation", batch_size=37)
    json.dumps(report, allow_nan=False)  # JSON-serializable, no NaN
    assert report["horizons"] == list(range(ds.H + 1)) and report["observables"] == ["output", "inflation", "rate"]
    assert set(report["definitions"]) >= {"rmse", "relative_error", "train_mean", "nearest_neighbour"}
    assert report["units"]["output"] == "percent"
    for w in WORLDS:
        m = report["worlds"][w]
        assert m["n_items"] == int((ref[(w, "split")] == 2).sum())
        assert m["rmse"] == [0.0] * (ds.H + 1) and m["rmse_all"] == 0.0 and m["relative_error_all"] == 0.0
    assert report["n_items"] == sum(report["worlds"][w]["n_items"] for w in WORLDS)


@pytest.mark.parametrize("split", ["test_interpolation", "test_extrapolation_slice", "val"])
def test_metrics_equal_numpy(ds, ref, split):
    noise = 0.05
    report = mdr.evaluate(_oracle(ref, ds, noise, seed=1), ds, split, baselines=[])
    # the same noise, drawn in the same item order (storage order, world after world, batches of 256)
    rng = np.random.default_rng(1)
    for w in WORLDS:
        idx = np.flatnonzero(ref[(w, "split")] == LABELS[split])
        if not idx.size:
            assert w not in report["worlds"] or report["worlds"][w]["n_items"] == 0
            continue
        truth = ref[(w, "irfs")][idx]
        pred = (truth + noise * rng.standard_normal(truth.shape)).astype(np.float32)
        expect = _metrics(pred, truth)
        got = report["worlds"][w]
        np.testing.assert_allclose(got["rmse"], expect["rmse"], rtol=1e-6)
        np.testing.assert_allclose(got["relative_error"], expect["relative_error"], rtol=1e-6)
        assert got["rmse_all"] == pytest.approx(expect["rmse_all"], rel=1e-6)
        e = pred.astype(np.float64) - truth
        np.testing.assert_allclose(
            got["rmse_by_observable"]["rate"], np.sqrt((e[..., 2] ** 2).mean(axis=(0, 1))), rtol=1e-6
        )
    assert report["baselines"] == {}


def test_train_mean_baseline(ds, ref):
    report = mdr.evaluate(_oracle(ref, ds), ds, "test_interpolation", baselines=["train_mean"])
    for w in WORLDS:
        train = ref[(w, "irfs")][ref[(w, "split")] == 0].astype(np.float64)
        truth = ref[(w, "irfs")][ref[(w, "split")] == 2]
        pred = np.broadcast_to(train.mean(axis=0), truth.shape)
        expect = _metrics(pred, truth)
        got = report["baselines"]["train_mean"]["worlds"][w]
        np.testing.assert_allclose(got["rmse"], expect["rmse"], rtol=1e-5)
        np.testing.assert_allclose(got["relative_error"], expect["relative_error"], rtol=1e-5)
        assert got["rmse_all"] > 0


def test_nearest_neighbour_baseline_against_brute_force(ds, ref):
    report = mdr.evaluate(_oracle(ref, ds), ds, "test_extrapolation_corner", baselines=["nearest_neighbour"])
    assert report["baselines"]["nearest_neighbour"]["theta_normalization"] == "stats"
    for w in WORLDS:
        norm = ds[w].stats_normalizer()
        train = np.flatnonzero(ref[(w, "split")] == 0)
        test = np.flatnonzero(ref[(w, "split")] == 4)
        if not test.size:
            continue
        zt = norm.normalize(ref[(w, "theta")][train]).astype(np.float32).astype(np.float64)
        zq = norm.normalize(ref[(w, "theta")][test])
        d = ((zq[:, None, :] - zt[None, :, :]) ** 2).sum(-1)
        nearest = train[np.argmin(d, axis=1)]
        expect = _metrics(ref[(w, "irfs")][nearest], ref[(w, "irfs")][test])
        got = report["baselines"]["nearest_neighbour"]["worlds"][w]
        np.testing.assert_allclose(got["rmse"], expect["rmse"], rtol=1e-5)


def test_regimes_options_and_leave_one_world_out(ds, ref):
    seen = {}

    def predict(batch):
        seen.setdefault("keys", set(batch))
        seen.setdefault("worlds", set()).update(batch["world_ids"])
        return np.zeros((batch["index"].size, ds.s_max, ds.H + 1, 3), np.float32)

    report = mdr.evaluate(predict, ds, "test_interpolation", regime="B1", history=6, worlds=["lss"], p_max=ds.p_max)
    assert "history" in seen["keys"] and "theta" not in seen["keys"] and seen["worlds"] == {"lss"}
    assert list(report["worlds"]) == ["lss"] and report["regime"] == "B1" and report["history"] == 6
    assert report["worlds"]["lss"]["relative_error_all"] == pytest.approx(1.0)  # predicting 0: error = truth


def test_bad_arguments(ds, ref, read_dataset):
    predict = _oracle(ref, ds)
    with pytest.raises(mdr.ReadArgumentError, match="evaluate fixes shuffle"):
        mdr.evaluate(predict, ds, "val", shuffle="chunks")
    with pytest.raises(mdr.ReadArgumentError, match="baselines: 'median' is not one of train_mean, nearest_neighbour"):
        mdr.evaluate(predict, ds, "val", baselines=["median"])
    with pytest.raises(mdr.ReadArgumentError, match="unknown split 'testing'"):
        mdr.evaluate(predict, ds, "testing")
    with pytest.raises(mdr.ReadArgumentError, match="predict returned shape"):
        mdr.evaluate(lambda b: np.zeros((1, 1)), ds, "val")
    with pytest.raises(mdr.ReadArgumentError, match="predict must be a callable"):
        mdr.evaluate("model", ds, "val")
    plain = mdr.open_dataset(read_dataset)  # no statistics: prior z-scores for the neighbours, computed mean
    report = mdr.evaluate(lambda b: np.zeros((b["index"].size, 3, plain.H + 1, 3), np.float32), plain, "val")
    assert report["baselines"]["nearest_neighbour"]["theta_normalization"] == "prior"
    assert report["normalize"] is True
