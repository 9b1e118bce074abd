"""The shipped models (nk_habit, rbc_iac) against an independent solver: linearsolve (Klein's QZ).

Each model's equations are written again here, by hand, in linearsolve's convention: a function
of the variables dated t+1 (``fwd``) and t (``cur``) returning the equilibrium conditions; states
first (exogenous states, whose innovations linearsolve adds at t, then endogenous states, dated so
that ``fwd.k`` is k[t+1], known at t); lagged variables become states such as ``xl[t+1] = x[t]``.
linearsolve linearizes these (exactly, for linear equations) and solves them by QZ; its impulse
responses to an innovation of ``sigma_j`` in state ``j`` are compared with the declared world's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ls = pytest.importorskip("linearsolve")
pd = pytest.importorskip("pandas")

from macro_data.worlds.declared import load_world_file  # noqa: E402
from macro_data.worlds.sampling import draw_range  # noqa: E402

WORLDS = Path(__file__).resolve().parents[3] / "datasets" / "worlds"
H = 40
N_DRAWS = 6


def nk_habit_equations(fwd, cur, p):
    b, s, k = p["beta"], p["sigma"], p["kappa"]
    h, io = p["h"], p["iota"]
    return np.array(
        [
            cur.x - h / (1 + h) * cur.xl - fwd.x / (1 + h) + (1 - h) / ((1 + h) * s) * (cur.i - fwd.pi - cur.r),
            cur.pi - b / (1 + b * io) * fwd.pi - io / (1 + b * io) * cur.pil - k * cur.x - cur.u,
            cur.i - p["rho_i"] * cur.il - (1 - p["rho_i"]) * (p["phi_pi"] * cur.pi + p["phi_y"] * cur.x) - cur.v,
            fwd.xl - cur.x,
            fwd.pil - cur.pi,
            fwd.il - cur.i,
            fwd.v - p["rho_m"] * cur.v,
            fwd.r - p["rho_r"] * cur.r,
            fwd.u - p["rho_u"] * cur.u,
        ]
    )


NK_HABIT = dict(
    equations=nk_habit_equations,
    variables=["v", "r", "u", "xl", "pil", "il", "x", "pi", "i"],
    n_states=6,
    n_exo_states=3,
    shocks={"monetary": "sigma_m", "demand": "sigma_r", "cost_push": "sigma_u"},
    observables=lambda s: {
        "output": 100 * s.x,
        "inflation": 400 * s.pi,
        "rate": 400 * s.i,
        "real_rate": 400 * (s.il - s.pi),
    },
)


def rbc_iac_equations(fwd, cur, p):
    beta, alpha, delta, nu, gamma = p["beta"], p["alpha"], p["delta"], p["nu"], p["gamma"]
    iy = delta * alpha / (1 / beta - 1 + delta)  # I/Y from the steady state
    R = 1 - beta * (1 - delta)
    return np.array(
        [
            cur.y - cur.a - alpha * cur.k - (1 - alpha) * cur.n,
            gamma * cur.c + cur.n / nu - cur.y + cur.n,
            fwd.k - (1 - delta) * cur.k - delta * cur.inv,
            cur.y - (1 - iy) * cur.c - iy * cur.inv,
            cur.inv - cur.invl / (1 + beta) - beta / (1 + beta) * fwd.inv - cur.q / ((1 + beta) * p["phi_i"]),
            cur.q - R * (fwd.y - fwd.k) - beta * (1 - delta) * fwd.q + cur.rf,
            cur.rf - gamma * (fwd.c - cur.c) + (fwd.b - cur.b),
            fwd.invl - cur.inv,
            fwd.a - p["rho_a"] * cur.a,
            fwd.b - p["rho_b"] * cur.b,
        ]
    )


RBC_IAC = dict(
    equations=rbc_iac_equations,
    variables=["a", "b", "k", "invl", "y", "n", "inv", "c", "q", "rf"],
    n_states=4,
    n_exo_states=2,
    shocks={"technology": "sigma_a", "preference": "sigma_b"},
    observables=lambda s: {
        "output": 100 * s.y,
        "inflation": 400 * (s.c - s.cl),
        "rate": 400 * s.rf,
        "consumption": 100 * s.c,
        "investment": 100 * s.inv,
        "hours": 100 * s.n,
        "capital": 100 * s.k,
        "tobins_q": 100 * s.q,
    },
)


def linearsolve_irfs(spec: dict, params: pd.Series) -> dict[str, pd.DataFrame]:
    """linearsolve's responses (model units) to an innovation of sigma_j in each shock at t = 0."""
    m = ls.model(
        equations=spec["equations"],
        variables=spec["variables"],
        n_states=spec["n_states"],
        n_exo_states=spec["n_exo_states"],
        shock_names=list(spec["shocks"]),
        parameters=params,
    )
    m.set_ss(np.zeros(len(spec["variables"])))
    m.approximate_and_solve(log_linear=False, eigenvalue_warnings=False)
    assert m.stab == 0  # exactly as many stable roots as states
    sizes = [params[sd] for sd in spec["shocks"].values()]
    m.impulse(T=H + 1, t0=0, shocks=sizes, normalize=False)
    return m.irs


@pytest.mark.parametrize("world_id, spec", [("nk_habit", NK_HABIT), ("rbc_iac", RBC_IAC)])
def test_responses_match_linearsolve(world_id, spec):
    world = load_world_file(WORLDS / f"{world_id}.yaml")
    theta = draw_range(world, 2024, 0, N_DRAWS, 1).theta  # prior draws (float32 values)
    theta = np.concatenate([theta, [[p.low for p in world.parameters]], [[p.high for p in world.parameters]]])
    mine = world.variable_irfs(theta, H)  # (n, S, H+1, variables)
    observables = world.irfs_all(theta, H)  # (n, S, H+1, observables)
    names = [o.name for o in world.observables + world.extras]
    worst_var = worst_obs = 0.0
    for d in range(theta.shape[0]):
        ref = linearsolve_irfs(spec, pd.Series(theta[d], index=world.parameter_names))
        for j, shock in enumerate(world.shocks):
            df = ref[shock]
            for v, name in enumerate(world.system.variables):
                worst_var = max(worst_var, np.abs(df[name].to_numpy() - mine[d, j, :, v]).max())
            lagged = df.shift(1).fillna(0.0)  # x[t-1] with the steady state before t = 0
            series = df.assign(cl=lagged["c"]) if "c" in df else df
            expected = spec["observables"](series)
            for o, name in enumerate(names):
                worst_obs = max(worst_obs, np.abs(expected[name].to_numpy() - observables[d, j, :, o]).max())
    assert worst_var < 1e-10, worst_var  # model units (quarterly fractions, log deviations)
    assert worst_obs < 1e-8, worst_obs  # canonical units (percent, annualized percentage points)
