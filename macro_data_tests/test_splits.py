"""The held-out regions remembered per theta segment (``splits.RegionMemo``) equal a fresh computation."""

import numpy as np
import pytest

from macro_data import splits
from macro_data.worlds import get_world
from macro_data.worlds.sampling import draw_range


@pytest.fixture(scope="module")
def var_theta():
    world = get_world("var")
    return world, draw_range(world, 7, 0, 1500, 2).theta


def fresh(world, theta):
    slice_ = splits.in_slice(world, theta)
    return slice_, splits.in_corner(world, theta) & ~slice_


def counting(monkeypatch):
    calls = []
    real = splits._compute_regions

    def spy(world, theta):
        calls.append(theta.shape[0])
        return real(world, theta)

    monkeypatch.setattr(splits, "_compute_regions", spy)
    return calls


def test_remembered_regions_equal_a_fresh_computation_whatever_the_segmentation(var_theta, monkeypatch):
    world, theta = var_theta
    memo = splits.RegionMemo()
    calls = counting(monkeypatch)
    expected = fresh(world, theta)
    assert expected[1].any() and expected[0].any()  # both regions occur in these draws
    whole = memo.regions(world, theta)
    assert calls == [1500]
    for lo, hi in [(0, 1500), (0, 256), (256, 1024), (1024, 1500), (512, 1500)]:
        got = memo.regions(world, theta[lo:hi])
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g, e[lo:hi])
    assert calls == [1500]  # every segment above was remembered
    for g, e in zip(whole, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    got = memo.regions(world, theta[100:700])  # segments that start elsewhere: computed, and equal
    assert calls == [1500, 600]
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e[100:700])


def test_changed_draws_are_computed_again(var_theta, monkeypatch):
    world, theta = var_theta
    memo = splits.RegionMemo()
    memo.regions(world, theta[:512])
    calls = counting(monkeypatch)
    changed = theta[:512].copy()
    changed[300] = theta[1200]  # one draw of the second segment replaced
    got = memo.regions(world, changed)
    assert calls == [256]  # only the segment holding the changed draw
    for g, e in zip(got, fresh(world, changed), strict=True):
        np.testing.assert_array_equal(g, e)
    other = get_world("lss")  # another world never answers from var's entries
    lss_theta = draw_range(other, 7, 0, 256, 2).theta
    memo.regions(other, lss_theta)
    assert calls == [256, 256]


def test_the_memo_is_bounded(var_theta, monkeypatch):
    world, theta = var_theta
    memo = splits.RegionMemo(max_segments=2)
    memo.regions(world, theta[:768])  # three segments: the first is dropped
    calls = counting(monkeypatch)
    memo.regions(world, theta[256:768])
    assert calls == []
    memo.regions(world, theta[:256])
    assert calls == [256]
