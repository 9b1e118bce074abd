"""Integrity: every array of a world opens, has the expected layout, decodes, is finite and hashes right.

For each array a stage owns (:mod:`macro_data.validation.spec`):

* it opens, and its shape, dtype and dimension names are the expected ones (from the recipe or
  the manifest), and agree with the manifest's listing when there is one;
* every chunk is present (a missing chunk would silently read as the fill value: NaN for floats,
  0 = ``train`` for split labels) and decodes: the crc32c codec rejects a chunk whose bytes
  changed, and the failing chunk is named by its sample range;
* float arrays hold no NaN or Inf;
* the content hash, recomputed from the decoded bytes by the storage layer's own
  :func:`macro_data.storage.arrays.content_hash` (one algorithm, named in the manifest), equals the
  hash the writer stored in the array's attributes and the one the manifest lists;
* coordinate arrays hold the world's names (parameters, shocks, observables, extras) and the
  index ranges ``time = 0..T-1``, ``horizon = 0..H``.

Arrays are read once, in slabs of whole chunks (about :data:`READ_ROWS` samples), so memory does not
grow with the number of samples; the same decoded slabs feed the finiteness count and the content
hash (:class:`macro_data.hashing.SegmentHasher`, the definition the writers use).
"""

from __future__ import annotations

import time

import numpy as np
import zarr

from macro_data.hashing import SegmentHasher
from macro_data.storage.arrays import storage_dtype
from macro_data.validation.results import CheckResult, Problems, result
from macro_data.validation.spec import STAGE_SHORT, ArraySpec, WorldSpec

READ_ROWS = 4096


def _slabs(array: zarr.Array, rows: int = READ_ROWS):
    """``(lo, hi)`` sample ranges made of whole chunks, about ``rows`` samples each."""
    chunk = array.chunks[0] if array.ndim else 1
    step = max(chunk, (rows // chunk) * chunk)
    n = array.shape[0] if array.ndim else 1
    for lo in range(0, n, step):
        yield lo, min(lo + step, n)


def _dtype_ok(array: zarr.Array, spec: ArraySpec) -> bool:
    if spec.dtype == "str":
        return np.dtype(array.dtype).kind in ("U", "O", "T")
    return str(array.dtype) == spec.dtype


def _where(index: tuple, dims: tuple[str, ...]) -> str:
    return ", ".join(f"{d}={int(i)}" for d, i in zip(dims, index))


def scan_array(name: str, array: zarr.Array, spec: ArraySpec, problems: Problems, rows: int = READ_ROWS) -> dict:
    """Decode every chunk once: count non-finite values and recompute the content hash from the same slabs.

    Returns figures ``{"sha256", "nonfinite", "bad_chunks", "bytes"}`` (``sha256`` is ``None`` when
    a chunk failed to decode, since the hash is then undefined).
    """
    dtype = storage_dtype(array.dtype)
    nonfinite = 0
    first_bad: str | None = None
    bad_chunks: list[tuple[int, int]] = []
    nbytes = 0
    chunk = array.chunks[0]
    hasher = SegmentHasher(dtype)
    for lo, hi in _slabs(array, rows):
        try:
            parts = [(lo, array[lo:hi])]
        except Exception:  # noqa: BLE001 - any decode error: find the chunk(s) it came from
            parts = []
            for c_lo in range(lo, hi, chunk):
                c_hi = min(c_lo + chunk, hi)
                try:
                    parts.append((c_lo, array[c_lo:c_hi]))
                except Exception as exc:  # noqa: BLE001
                    bad_chunks.append((c_lo, c_hi))
                    problems.add(
                        f"array {name!r}: the chunk holding samples {c_lo}-{c_hi - 1} does not decode "
                        f"({type(exc).__name__}: {exc})"
                    )
        for p_lo, block in parts:
            block = np.ascontiguousarray(block, dtype=dtype)
            nbytes += block.nbytes
            if not bad_chunks:  # the hash is undefined once a chunk failed
                hasher.update(block)
            if dtype.kind == "f":
                bad = ~np.isfinite(block)
                count = int(bad.sum())
                if count and first_bad is None:
                    idx = np.unravel_index(int(np.flatnonzero(bad)[0]), block.shape)
                    first_bad = f"{_where((idx[0] + p_lo, *idx[1:]), spec.dims)} is {block[idx]}"
                nonfinite += count
    if nonfinite:
        problems.add(f"array {name!r}: {nonfinite} non-finite (NaN or Inf) values; first at {first_bad}")
    digest = None if bad_chunks else hasher.hexdigest()
    return {"sha256": digest, "nonfinite": nonfinite, "bad_chunks": len(bad_chunks), "bytes": nbytes}


def check_integrity(spec: WorldSpec, stage: str, rows: int = READ_ROWS) -> CheckResult:
    """Integrity of the arrays one stage (``world_draws``, ``world_arrays``, ``world_splits``) owns."""
    t0 = time.perf_counter()
    name = f"integrity.{STAGE_SHORT[stage]}"
    problems = Problems()
    expected = spec.arrays(stage)
    figures: dict = {
        "arrays_checked": 0,
        "chunks_checked": 0,
        "bytes_decoded": 0,
        "nonfinite_values": 0,
        "undecodable_chunks": 0,
        "missing_chunks": 0,
        "hash_mismatches": 0,
        "sha256": {},
    }
    inputs = {
        "store": spec.store.location,
        "arrays": list(expected),
        "n_samples": spec.n,
        "T": spec.T,
        "H": spec.H,
        "rows_per_read": rows,
        "reference": "manifest.json" if spec.manifest is not None else "recipe",
    }
    try:
        group = spec.open()
    except Exception as exc:  # noqa: BLE001
        problems.add(f"the world's store does not open ({exc})")
        return result(name, "integrity", spec.world_id, problems, "", figures, inputs, time.perf_counter() - t0)
    listed = (spec.manifest or {}).get("arrays", {})
    for aname, a_spec in expected.items():
        try:
            array = group[aname]
            if not isinstance(array, zarr.Array):
                raise TypeError("not an array")
        except Exception as exc:  # noqa: BLE001
            problems.add(f"array {aname!r} is missing or does not open ({type(exc).__name__}: {exc})")
            continue
        figures["arrays_checked"] += 1
        shape, dims = tuple(array.shape), tuple(array.metadata.dimension_names or ())
        if shape != a_spec.shape:
            problems.add(f"array {aname!r} has shape {list(shape)}, expected {list(a_spec.shape)}")
        if not _dtype_ok(array, a_spec):
            problems.add(f"array {aname!r} has dtype {array.dtype}, expected {a_spec.dtype}")
        if dims != a_spec.dims:
            problems.add(f"array {aname!r} has dimensions {list(dims)}, expected {list(a_spec.dims)}")
        if a_spec.is_coordinate:
            try:
                values = tuple(v.item() if hasattr(v, "item") else v for v in np.asarray(array[...]).tolist())
            except Exception as exc:  # noqa: BLE001
                problems.add(f"coordinate array {aname!r} does not decode ({type(exc).__name__}: {exc})")
                continue
            if tuple(str(v) for v in values) != tuple(str(v) for v in a_spec.values):
                problems.add(
                    f"coordinate array {aname!r} holds {list(values)[:12]}, expected {list(a_spec.values)[:12]}"
                )
            continue
        if aname in listed:
            entry = listed[aname]
            if list(entry.get("shape", [])) != list(shape):
                problems.add(
                    f"array {aname!r}: the manifest lists shape {entry.get('shape')}, the store has {list(shape)}"
                )
            if entry.get("dtype") != str(array.dtype):
                problems.add(
                    f"array {aname!r}: the manifest lists dtype {entry.get('dtype')}, the store has {array.dtype}"
                )
            if list(entry.get("dimension_names", [])) != list(dims):
                problems.add(
                    f"array {aname!r}: the manifest lists dimensions {entry.get('dimension_names')}, "
                    f"the store has {list(dims)}"
                )
        elif spec.manifest is not None:
            problems.add(f"array {aname!r} is in the store but not listed in the manifest")
        if shape != a_spec.shape and (len(shape) != len(a_spec.shape) or shape[0] == 0):
            continue  # a different rank cannot be scanned meaningfully
        n_chunks, present = int(array.nchunks), int(array.nchunks_initialized)
        figures["chunks_checked"] += n_chunks
        if present != n_chunks:
            figures["missing_chunks"] += n_chunks - present
            problems.add(
                f"array {aname!r}: {n_chunks - present} of {n_chunks} chunks are missing "
                f"(they would read as the fill value)"
            )
        scanned = scan_array(aname, array, a_spec, problems, rows)
        figures["bytes_decoded"] += scanned["bytes"]
        figures["nonfinite_values"] += scanned["nonfinite"]
        figures["undecodable_chunks"] += scanned["bad_chunks"]
        digest = scanned["sha256"]
        figures["sha256"][aname] = digest
        if digest is None:
            continue
        stored = array.attrs.get("sha256")
        if stored != digest:
            figures["hash_mismatches"] += 1
            problems.add(
                f"array {aname!r}: content hash {digest[:16]}... differs from the hash written with the "
                f"array ({str(stored)[:16]}...): its content changed after it was written"
            )
        if aname in listed and listed[aname].get("sha256") != digest:
            figures["hash_mismatches"] += 1
            problems.add(
                f"array {aname!r}: content hash {digest[:16]}... differs from the manifest's "
                f"{str(listed[aname].get('sha256'))[:16]}..."
            )
    ok = (
        f"{figures['arrays_checked']} arrays, {figures['chunks_checked']} chunks decoded "
        f"({figures['bytes_decoded'] / 2**20:.1f} MiB), layouts as expected, no NaN/Inf, content hashes match"
    )
    return result(name, "integrity", spec.world_id, problems, ok, figures, inputs, time.perf_counter() - t0)
