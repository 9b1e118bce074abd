"""Seeding and drawing: every random number of sample ``i`` of world ``w`` from ``(seed, w, i)``.

Algorithm ``block-seedsequence-pcg64/v1`` (recorded in the manifest with its constants):

* Samples are grouped in fixed blocks of ``BLOCK_SIZE = 256`` consecutive indices. The block
  size is a constant of the algorithm, never a batch or chunk size.
* Each block has one stream per purpose:
  ``PCG64(SeedSequence(seed, spawn_key=(world_key, block, purpose)))`` with ``world_key`` a
  32-bit number from SHA-256 of the world's name and ``purpose`` one of :data:`PURPOSES`.
  Different worlds, seeds, blocks and purposes therefore never share a stream.
* Within a block, draws are made for the whole block in a fixed order: parameters by rejection
  rounds (each round proposes all ``BLOCK_SIZE`` candidates; samples still without a valid draw
  take their candidate if it is valid), innovations as ``standard_normal((BLOCK_SIZE, T, S))``,
  per-period random inputs (e.g. regimes) from their own stream, split uniforms likewise.
* Computations always cover whole blocks, so a sample's values never depend on the batch size,
  the storage chunking, the number of workers or the execution order. Any range of samples is
  computed from the blocks that cover it and then sliced.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from macro_data.errors import WorldError
from macro_data.worlds.base import World, checked_int, to_float32_precision
from macro_data.worlds.priors import Prior, PriorSet

ALGORITHM = "block-seedsequence-pcg64/v1"
BLOCK_SIZE = 256
BATCH_SAMPLES = 2048  # samples computed per step inside a pipeline region: bounds memory whatever the dataset size
PURPOSES = {
    "theta": 0,
    "shocks": 1,
    "metadata": 2,
    "split": 3,
    "subset": 4,
    "burn_in": 5,
    "state_dates": 6,
    "noise": 7,
    "design": 8,
}
MAX_REJECTION_ROUNDS = 1000
DESIGNS = ("random", "sobol")
SOBOL_BITS = 30  # points of a world's Sobol sequence: at most 2**30 samples


def seeding_description() -> dict:
    """The seeding algorithm and its constants, for the manifest.

    Returns
    -------
    dict
        JSON-ready: ``algorithm``, ``block_size``, ``bit_generator``, ``stream_key``, ``world_key``,
        ``purposes``, ``max_rejection_rounds`` and plain-text rules for innovations, measurement
        noise, parameters and the Sobol design.
    """
    return {
        "algorithm": ALGORITHM,
        "block_size": BLOCK_SIZE,
        "bit_generator": "numpy PCG64",
        "stream_key": "SeedSequence(entropy=seed, spawn_key=(world_key, block_index, purpose))",
        "world_key": "first 4 bytes (big-endian) of sha256('macro_data/world/' + world name)",
        "purposes": dict(PURPOSES),
        "max_rejection_rounds": MAX_REJECTION_ROUNDS,
        "innovations": "standard_normal((block_size, T, n_shocks)) per block, rounded to float32",
        "measurement_noise": "standard_normal((block_size, T, 3)) per block from the noise stream; observed = "
        "float32(float64(float32 trajectories) + sd * noise)",
        "parameters": "rejection rounds of block_size proposals per block; theta rounded to float32 before validation",
        "sobol_design": "design sobol: sample i's first proposal maps point i of scipy's Sobol(d, scramble=True, "
        f"bits={SOBOL_BITS}) seeded by block 0's design stream (d = drawn parameters not fixed) through each "
        "prior's inverse CDF; later proposals are the random design's",
    }


def check_seed(seed: int) -> int:
    """The seed as an ``int``.

    Parameters
    ----------
    seed : int
        A Python or numpy integer (not a bool), ``>= 0``.

    Returns
    -------
    int

    Raises
    ------
    WorldError
        If ``seed`` is not a non-negative integer.
    """
    return checked_int(seed, 0, "seed")


def block_rng(seed: int, world: World, block: int, purpose: str) -> np.random.Generator:
    """The stream of one block and purpose.

    Parameters
    ----------
    seed : int
        The dataset seed, ``>= 0``.
    world : World
        The world; its :attr:`~macro_data.worlds.base.World.key` enters the spawn key.
    block : int
        Block index: samples ``block * BLOCK_SIZE .. (block + 1) * BLOCK_SIZE - 1``.
    purpose : str
        A key of :data:`PURPOSES` (``theta``, ``shocks``, ``metadata``, ``split``, ``subset``,
        ``noise``, ``design``).

    Returns
    -------
    numpy.random.Generator
        ``PCG64(SeedSequence(seed, spawn_key=(world.key, block, PURPOSES[purpose])))``, fresh.

    Raises
    ------
    WorldError
        If ``seed`` is not a non-negative integer.
    KeyError
        For an unknown ``purpose``.
    """
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(check_seed(seed), spawn_key=(world.key, int(block), PURPOSES[purpose])))
    )


def blocks_covering(start: int, stop: int) -> range:
    """The blocks holding samples ``start .. stop - 1``.

    Parameters
    ----------
    start, stop : int
        Sample range ``[start, stop)``, ``0 <= start <= stop``.

    Returns
    -------
    range
        Block indices ``start // BLOCK_SIZE .. ceil(stop / BLOCK_SIZE) - 1`` (empty if ``start == stop``).

    Raises
    ------
    WorldError
        If ``start < 0`` or ``stop < start``.
    """
    if start < 0 or stop < start:
        raise WorldError(f"invalid sample range [{start}, {stop})")
    return range(start // BLOCK_SIZE, -(-stop // BLOCK_SIZE))


@dataclass
class Draws:
    """Random inputs of samples ``start .. start + n - 1``: theta float64 holding float32 values,
    shocks float32 (as stored)."""

    start: int
    theta: np.ndarray  # (n, P)
    shocks: np.ndarray  # (n, T, S)
    metadata: dict[str, np.ndarray] = field(default_factory=dict)  # stage="draws" fields (n, T)
    rejections: np.ndarray | None = None  # (n,) invalid proposals each sample drew before its valid one
    burn_in_metadata: dict[str, np.ndarray] = field(default_factory=dict)  # the chains' first B periods (n, B)

    @property
    def n(self) -> int:
        return self.theta.shape[0]

    def slice(self, lo: int, hi: int) -> Draws:
        """Rows ``lo:hi`` (relative to this batch).

        Parameters
        ----------
        lo, hi : int
            Row range within this batch.

        Returns
        -------
        Draws
            Views of the rows, ``start`` shifted by ``lo``.
        """
        return Draws(
            self.start + lo,
            self.theta[lo:hi],
            self.shocks[lo:hi],
            {k: v[lo:hi] for k, v in self.metadata.items()},
            None if self.rejections is None else self.rejections[lo:hi],
            {k: v[lo:hi] for k, v in self.burn_in_metadata.items()},
        )


def _prior_set(priors: Mapping[str, tuple[float, float]]) -> PriorSet:
    if isinstance(priors, PriorSet):
        return priors
    return PriorSet({k: Prior(float(lo), float(hi)) for k, (lo, hi) in priors.items()})


_sobol_engines = threading.local()  # per thread: {(seed, world key, d): (engine, position)}


@functools.cache
def _sobol() -> tuple[type, str]:
    """scipy's ``Sobol`` and the name of its generator keyword: scipy 1.15 renamed ``seed`` to ``rng`` (the old
    name is still accepted, deprecated later). Imported on first use: scipy.stats takes about a second to
    import, which every process loading the code location would otherwise pay."""
    from scipy.stats import qmc

    return qmc.Sobol, "rng" if "rng" in inspect.signature(qmc.Sobol).parameters else "seed"


def sobol_points(world: World, seed: int, d: int, start: int, n: int) -> np.ndarray:
    """Points ``start .. start + n - 1`` (``(n, d)`` in ``[0, 1)``) of the world's scrambled Sobol sequence:
    scipy's ``Sobol(d, scramble=True, bits=SOBOL_BITS)`` seeded by block 0's ``design`` stream, advanced
    with its public ``fast_forward``. Each thread keeps its engine where the last call left it, so blocks
    asked for in increasing order (as regions compute them) skip only the points in between.

    Parameters
    ----------
    world : World
        The world (its key seeds the design stream).
    seed : int
        The dataset seed, ``>= 0``.
    d : int
        Dimension: the drawn parameters whose prior is not ``fixed``.
    start : int
        Index of the first point.
    n : int
        Number of points.

    Returns
    -------
    ndarray of float64, shape (n, d)
        Points in ``[0, 1)``; the same whatever the thread or the order of earlier calls.

    Raises
    ------
    WorldError
        If ``d`` exceeds scipy's ``Sobol.MAXDIM``, the range leaves ``[0, 2**SOBOL_BITS)``, or the
        seed is not a non-negative integer.
    """
    sobol, keyword = _sobol()
    if d > sobol.MAXDIM:
        raise WorldError(f"world {world.name!r}: a Sobol design supports at most {sobol.MAXDIM} drawn parameters")
    if start < 0 or start + n > 2**SOBOL_BITS:
        raise WorldError(f"world {world.name!r}: Sobol point index outside [0, 2**{SOBOL_BITS})")
    seed = check_seed(seed)
    engines = _sobol_engines.__dict__.setdefault("engines", {})
    key = (seed, world.key, d)
    engine, position = engines.get(key, (None, 0))
    if engine is None or position > start:
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(world.key, 0, PURPOSES["design"])))
        )
        engine, position = sobol(d, scramble=True, bits=SOBOL_BITS, **{keyword: rng}), 0
    if start > position:
        engine.fast_forward(start - position)
    points = engine.random(n)
    if len(engines) >= 16:
        engines.clear()
    engines[key] = (engine, start + n)
    return points


def design_uniforms(world: World, seed: int, block: int, priors: PriorSet) -> np.ndarray:
    """The first-round uniforms ``(BLOCK_SIZE, n_drawn)`` of a block under the Sobol design: sample ``i``
    takes point ``i`` of the world's sequence, over the drawn parameters whose prior is not ``fixed`` (in
    parameter order); a fixed parameter's column is 0.5 and unused.

    Parameters
    ----------
    world : World
        The world.
    seed : int
        The dataset seed, ``>= 0``.
    block : int
        Block index.
    priors : PriorSet
        The resolved priors (which parameters are ``fixed``).

    Returns
    -------
    ndarray of float64, shape (BLOCK_SIZE, n_drawn)
        One column per drawn parameter, in parameter order.
    """
    drawn = [p.name for p in world.parameters if p.kind in ("uniform", "integer")]
    free = [k for k, name in enumerate(drawn) if priors.prior(name).family != "fixed"]
    u = np.full((BLOCK_SIZE, len(drawn)), 0.5)
    if free:
        u[:, free] = sobol_points(world, seed, len(free), block * BLOCK_SIZE, BLOCK_SIZE)
    return u


def draw_theta_blocks(
    world: World, seed: int, blocks: range, priors: Mapping[str, tuple[float, float]], design: str = "random"
) -> tuple[np.ndarray, np.ndarray]:
    """Valid parameters of consecutive blocks by rejection: ``(theta, rejections)``, ``BLOCK_SIZE`` rows per block.

    Each block draws from its own stream exactly as if alone (one round of ``BLOCK_SIZE`` proposals
    while any of its samples lacks a valid draw); the candidates of all blocks still drawing are
    validated in one call, which is element-wise, so batching changes nothing but the speed.

    ``design="sobol"``: the first round's uniforms are the samples' Sobol points
    (:func:`design_uniforms`; the round draws its uniforms from the stream all the same), later rounds
    are the random design's. A sample's draw thus depends on its own Sobol point and its block's stream
    only: chunk-size independent and prefix-stable, whatever was rejected.

    Parameters
    ----------
    world : World
        The world.
    seed : int
        The dataset seed, ``>= 0``.
    blocks : range
        Consecutive block indices (:func:`blocks_covering`).
    priors : mapping
        A :class:`~macro_data.worlds.priors.PriorSet` or ``{name: (low, high)}`` (uniform).
    design : {"random", "sobol"}, optional
        How the first round's uniforms are made.

    Returns
    -------
    theta : ndarray of float64, shape (len(blocks) * BLOCK_SIZE, P)
        Valid draws holding float32-representable values.
    rejections : ndarray of int64, shape (len(blocks) * BLOCK_SIZE,)
        Invalid proposals each sample drew before its valid one.

    Raises
    ------
    WorldError
        For an unknown ``design``, or when a block still lacks valid draws after
        ``MAX_REJECTION_ROUNDS`` rounds.
    """
    if design not in DESIGNS:
        raise WorldError(f"world {world.name!r}: unknown design {design!r} (designs: {', '.join(DESIGNS)})")
    if design == "sobol":
        priors = _prior_set(priors)
        first = [priors.with_uniforms(design_uniforms(world, seed, b, priors)) for b in blocks]
    rngs = [block_rng(seed, world, b, "theta") for b in blocks]
    n = len(blocks) * BLOCK_SIZE
    theta = np.full((n, len(world.parameters)), np.nan)
    rejections = np.zeros(n, dtype=np.int64)
    filled = np.zeros(n, dtype=bool)
    filled_by_block = filled.reshape(len(blocks), BLOCK_SIZE)  # a view
    drawing = np.arange(len(blocks))  # positions of the blocks with a sample still to fill
    for round_ in range(MAX_REJECTION_ROUNDS):
        candidates = np.concatenate(
            [
                to_float32_precision(
                    world.propose(rngs[j], BLOCK_SIZE, first[j] if design == "sobol" and round_ == 0 else priors)
                )
                for j in drawing
            ]
        )
        rows = (drawing[:, None] * BLOCK_SIZE + np.arange(BLOCK_SIZE)).ravel()
        todo = ~filled[rows]
        rows, candidates = rows[todo], candidates[todo]
        ok = world.valid(candidates)
        theta[rows[ok]] = candidates[ok]
        rejections[rows[~ok]] += 1
        filled[rows[ok]] = True
        drawing = drawing[~filled_by_block[drawing].all(axis=1)]
        if not drawing.size:
            return theta, rejections
    j = int(drawing[0])
    missing = int((~filled_by_block[j]).sum())
    raise WorldError(
        f"world {world.name!r}: {missing} samples of block {blocks[j]} found no valid "
        f"parameter draw in {MAX_REJECTION_ROUNDS} proposals each; the priors {dict(priors)} "
        f"may leave (almost) no valid region"
    )


def draw_range(
    world: World,
    seed: int,
    start: int,
    stop: int,
    T: int,
    priors: Mapping[str, tuple[float, float]] | None = None,
    design: str = "random",
    burn_in: int = 0,
) -> Draws:
    """Random inputs of samples ``start .. stop - 1``, computed from the whole blocks covering them.
    ``design``: how the parameters' first proposals fill the prior (:func:`draw_theta_blocks`);
    ``burn_in``: periods simulated before ``t = 0``, through which drawn metadata chains run
    (:func:`metadata_chains`).

    Innovations are drawn in float64 and kept in float32 (the stored precision; simulations
    convert them back exactly), written block by block into the batch's arrays.

    Parameters
    ----------
    world : World
        The world.
    seed : int
        The dataset seed, ``>= 0``.
    start, stop : int
        Sample range ``[start, stop)``, ``0 <= start < stop``.
    T : int
        Number of periods, ``>= 1``.
    priors : mapping, optional
        A :class:`~macro_data.worlds.priors.PriorSet` or ``{name: (low, high)}``; ``None``: the
        world's own bounds (:meth:`~macro_data.worlds.base.World.resolve_priors` without overrides).
    design : {"random", "sobol"}, optional
        The parameter design (:func:`draw_theta_blocks`).
    burn_in : int, optional
        Burn-in periods ``B >= 0``; only the drawn metadata depend on it.

    Returns
    -------
    Draws
        ``theta (n, P)`` float64 holding float32 values, ``shocks (n, T, S)`` float32, the
        ``stage="draws"`` metadata ``(n, T)``, ``rejections (n,)`` int64 and the metadata's burn-in
        periods ``(n, B)`` (empty when ``B = 0``), with ``n = stop - start``.

    Raises
    ------
    WorldError
        A ``T`` that is not a positive integer, an empty or invalid range, a bad seed or design, or
        no valid parameter draw (:func:`draw_theta_blocks`).
    """
    T = checked_int(T, 1, f"world {world.name!r}: T")
    priors = world.resolve_priors(None) if priors is None else priors
    blocks = blocks_covering(start, stop)
    if len(blocks) == 0:
        raise WorldError(f"world {world.name!r}: empty sample range [{start}, {stop})")
    n, T = len(blocks) * BLOCK_SIZE, int(T)
    theta, rejections = draw_theta_blocks(world, seed, blocks, priors, design)
    shocks = np.empty((n, T, len(world.shocks)), dtype=np.float32)
    for j, b in enumerate(blocks):
        rows = slice(j * BLOCK_SIZE, (j + 1) * BLOCK_SIZE)
        shocks[rows] = block_rng(seed, world, b, "shocks").standard_normal((BLOCK_SIZE, T, len(world.shocks)))
    chains = metadata_chains(world, seed, blocks, theta, int(burn_in) + T)
    whole = Draws(
        blocks.start * BLOCK_SIZE,
        theta,
        shocks,
        {k: v[:, burn_in:] for k, v in chains.items()},
        rejections,
        {k: v[:, :burn_in] for k, v in chains.items()} if burn_in else {},
    )
    return whole.slice(start - whole.start, stop - whole.start)


def metadata_chains(world: World, seed: int, blocks: range, theta: np.ndarray, periods: int) -> dict[str, np.ndarray]:
    """The drawn metadata of whole blocks over ``periods`` periods, from each block's ``metadata`` stream.

    With a burn-in of ``B`` periods a chain (e.g. switching's regime path) runs ``B + T`` periods as one
    Markov chain: its first ``B`` drive the burn-in, its last ``T`` are stored. ``B = 0`` draws exactly
    as before burn-in existed.

    Parameters
    ----------
    world : World
        The world.
    seed : int
        The dataset seed, ``>= 0``.
    blocks : range
        Consecutive block indices.
    theta : ndarray of float64, shape (len(blocks) * BLOCK_SIZE, P)
        The blocks' valid parameter vectors.
    periods : int
        Length of each chain.

    Returns
    -------
    dict of str to ndarray
        One ``(len(blocks) * BLOCK_SIZE, periods)`` array per ``stage="draws"`` field; empty for worlds
        without any.
    """
    parts: dict[str, list[np.ndarray]] = {}
    if not any(f.stage == "draws" for f in world.metadata_fields):
        return {}
    for j, b in enumerate(blocks):
        rows = slice(j * BLOCK_SIZE, (j + 1) * BLOCK_SIZE)
        for k, v in world.draw_metadata(block_rng(seed, world, b, "metadata"), theta[rows], periods).items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def burn_in_shocks(world: World, seed: int, start: int, stop: int, B: int) -> np.ndarray:
    """Innovations ``(stop - start, B, S)`` of the burn-in of samples ``start .. stop - 1``:
    ``standard_normal((BLOCK_SIZE, B, S))`` from each covering block's ``burn_in`` stream (purpose 5),
    rounded to float32 like the stored innovations, then sliced. Never stored.

    Parameters
    ----------
    world : World
        The world.
    seed : int
        The dataset seed, ``>= 0``.
    start, stop : int
        Sample range ``[start, stop)``.
    B : int
        Burn-in periods, ``>= 1``.

    Returns
    -------
    ndarray of float32, shape (stop - start, B, S)

    Raises
    ------
    WorldError
        An invalid range or seed.
    """
    S = len(world.shocks)
    return per_block(
        world, seed, start, stop, "burn_in", lambda rng: rng.standard_normal((BLOCK_SIZE, B, S)).astype(np.float32)
    )


def per_block(world: World, seed: int, start: int, stop: int, purpose: str, draw) -> np.ndarray:
    """Rows ``start .. stop - 1`` of a per-sample random quantity drawn block by block: ``draw(rng)`` gives
    the ``BLOCK_SIZE`` rows of a block from its ``purpose`` stream, for each block covering the range, so
    the rows never depend on the range asked for.

    Parameters
    ----------
    world : World
        The world.
    seed : int
        The dataset seed, ``>= 0``.
    start, stop : int
        Sample range ``[start, stop)``.
    purpose : str
        A key of :data:`PURPOSES`.
    draw : callable
        ``numpy.random.Generator -> ndarray`` with ``BLOCK_SIZE`` rows.

    Returns
    -------
    ndarray with ``stop - start`` rows

    Raises
    ------
    WorldError
        An invalid range or seed.
    """
    blocks = blocks_covering(start, stop)
    rows = np.concatenate([draw(block_rng(seed, world, b, purpose)) for b in blocks])
    offset = start - blocks.start * BLOCK_SIZE
    return rows[offset : offset + (stop - start)]


def split_uniforms(world: World, seed: int, start: int, stop: int) -> np.ndarray:
    """One uniform on [0, 1) per sample for split assignment, from the blocks' ``split`` streams.

    Parameters
    ----------
    world : World
        The world.
    seed : int
        The dataset seed, ``>= 0``.
    start, stop : int
        Sample range ``[start, stop)``.

    Returns
    -------
    ndarray of float64, shape (stop - start,)

    Raises
    ------
    WorldError
        An invalid range or seed.
    """
    return per_block(world, seed, start, stop, "split", lambda rng: rng.random(BLOCK_SIZE))


def noise_range(world: World, seed: int, start: int, stop: int, T: int) -> np.ndarray:
    """Standard normals ``(stop - start, T, 3)`` of the measurement noise of samples ``start .. stop - 1``:
    ``standard_normal((BLOCK_SIZE, T, 3))`` from each covering block's ``noise`` stream, then sliced.
    Always one per canonical observable, whatever their standard deviations.

    Parameters
    ----------
    world : World
        The world.
    seed : int
        The dataset seed, ``>= 0``.
    start, stop : int
        Sample range ``[start, stop)``.
    T : int
        Number of periods.

    Returns
    -------
    ndarray of float64, shape (stop - start, T, 3)

    Raises
    ------
    WorldError
        An invalid range or seed.
    """
    return per_block(world, seed, start, stop, "noise", lambda rng: rng.standard_normal((BLOCK_SIZE, T, 3)))


def observe(trajectories: np.ndarray, z: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """The ``observed`` array: float32 trajectories plus ``sd`` (one per observable) times the standard
    normals ``z``, computed in float64 and rounded once to float32.

    Parameters
    ----------
    trajectories : ndarray, shape (n, T, 3)
        Canonical observables (rounded to float32 first, as stored).
    z : ndarray, shape (n, T, 3)
        Standard normals (:func:`noise_range`).
    sd : array_like, shape (3,)
        Noise standard deviation per observable, in the observable's units.

    Returns
    -------
    ndarray of float32, shape (n, T, 3)
    """
    clean = np.asarray(trajectories, dtype=np.float32).astype(np.float64)
    return (clean + z * np.asarray(sd, dtype=np.float64)).astype(np.float32)
