"""The stored data of a published dataset: lazy, labelled, verified arrays per world.

A dataset folder ``<root>/<name>/<version>/`` (a local folder or an ``s3://`` prefix) holds
``manifest.json`` and the worlds' Zarr v3 groups. :class:`DatasetCore` holds the validated
manifest and, per world, a :class:`WorldData` whose arrays (:class:`LazyArray`) are read only when
indexed, one chunk at a time, so memory is bounded by the request plus one chunk.

Chunks are read as whole files and decoded here (Blosc + crc32c, the codec chain the build writes,
through :class:`macro_data.storage.chunks.ChunkCodec`), without Zarr's event loop; an array with any
other layout or codec is read through Zarr's public API. ``MACRO_DATA_DIRECT_CHUNKS=0`` forces Zarr.

Integrity, in three layers:

* Always (cheap, at open): every array the manifest lists exists, with the manifest's shape,
  dtype and dimension names, and the content hash the store recorded when it was written equals
  the manifest's. A store republished after the manifest, or an edited manifest, is refused.
* Always (on read): every chunk is checked against its crc32c checksum as it is decoded, and a
  missing chunk file is an error (Zarr would otherwise fill it with NaN, or 0 for split labels).
  Both raise :class:`IntegrityError` naming the chunk file.
* On request (``verify=True`` or :meth:`DatasetCore.verify`): every array (the stored statistics
  included) is decoded chunk by chunk and its content hash (the manifest's ``hash.algorithm``,
  :mod:`macro_data.hashing`) is recomputed and compared with the manifest's; a mismatch raises
  naming the world, the array, and the expected and actual hashes. Verification also checks every
  split's index set (count and ``index_hash``), the store's coordinate arrays (the names and index
  ranges that label the arrays) against the manifest, and the manifest against its own recipe
  (:func:`macro_data.read.manifest.recipe_problems`), so an edited manifest cannot relabel or
  re-normalize intact data. Split index sets are also checked against the manifest's
  ``index_hash`` whenever :meth:`WorldData.split_indices` computes them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from macro_data.hashing import HASH_ALGORITHM, HASH_SEGMENT, hash_blocks
from macro_data.read._args import known, names_arg
from macro_data.read.errors import IntegrityError, ReadArgumentError
from macro_data.read.manifest import MANIFEST_NAME, Folder, recipe_problems
from macro_data.read.normalize import ParameterNormalizer
from macro_data.read.stats import STATS_KEY, OutputNormalizer, WorldStats
from macro_data.storage.chunks import direct_layout

SHOCK_UNIT = "standard deviations"  # shocks are standard-normal innovations (spec, "Conventions")
MOMENTS = ("mean", "sd")  # labels of the stored statistics' first dimension


def _segments(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """The same rows, re-cut so that every block but the last is a whole number of hash segments."""
    carry: list[np.ndarray] = []
    rows = 0
    for block in blocks:
        carry.append(block)
        rows += block.shape[0]
        if rows >= HASH_SEGMENT:
            joined = np.concatenate(carry) if len(carry) > 1 else carry[0]
            whole = rows - rows % HASH_SEGMENT
            yield joined[:whole]
            carry, rows = ([joined[whole:]], rows - whole) if rows > whole else ([], 0)
    if carry:
        yield np.concatenate(carry)


class LazyArray:
    """One stored array of one world, read lazily chunk by chunk along its first axis (``sample``).

    Indexing (``arr[i]``, ``arr[lo:hi]``, ``arr[[3, 1, 2]]``, ``arr[mask]``, ``arr[lo:hi, :, 0]``)
    reads only the chunks holding the requested samples, one at a time, and returns a NumPy array.
    ``coords`` maps each dimension name to its labels (``None`` for ``sample``), ``units`` maps
    the labels of the variable dimension (``param``, ``shock``, ``observable``, ``extra``) to their
    units.

    Parameters
    ----------
    world : str
        The world's id.
    name : str
        The array's name (``theta``, ``irfs``...).
    folder : Folder
        The dataset folder.
    spec : Mapping
        The array's entry of the manifest (path, shape, dtype, dimension names, sha256).
    coords : Mapping[str, tuple or None]
        Labels per dimension.
    units : Mapping[str, str]
        Units per label of the variable dimension.
    hash_algorithm : str
        The manifest's content-hash algorithm.
    """

    def __init__(
        self,
        world: str,
        name: str,
        folder: Folder,
        spec: Mapping,
        coords: Mapping[str, tuple | None],
        units: Mapping[str, str],
        hash_algorithm: str = HASH_ALGORITHM,
    ):
        self.world = world
        self.hash_algorithm = hash_algorithm
        self.name = name
        self.relpath = str(spec["path"])
        self.folder = folder.join(self.relpath)
        self.path = self.folder.path
        self.description = str(spec.get("description", ""))
        self.expected_sha256 = str(spec["sha256"])
        try:
            meta = json.loads(self.folder.join("zarr.json").read_bytes())
        except FileNotFoundError:
            raise IntegrityError(
                f"world {world!r} array {name!r}: the manifest lists {self.relpath} but "
                f"there is no Zarr array at {self.path}"
            ) from None
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"world {world!r} array {name!r}: cannot open {self.path}: {exc}") from exc
        try:
            self._z = self.folder.open_array()
        except Exception as exc:  # unreadable metadata is corruption from the reader's point of view
            raise IntegrityError(f"world {world!r} array {name!r}: cannot open {self.path}: {exc}") from exc
        self.shape: tuple[int, ...] = tuple(int(s) for s in self._z.shape)
        self.dtype = np.dtype(self._z.dtype)
        self.dims: tuple[str, ...] = tuple(self._z.metadata.dimension_names or ())
        problems = []
        if list(self.shape) != list(spec["shape"]):
            problems.append(f"shape {list(self.shape)} (manifest {spec['shape']})")
        if str(self.dtype) != spec["dtype"]:
            problems.append(f"dtype {self.dtype} (manifest {spec['dtype']})")
        if list(self.dims) != list(spec["dimension_names"]):
            problems.append(f"dimension names {list(self.dims)} (manifest {spec['dimension_names']})")
        stored_hash = self._z.attrs.get("sha256")
        if stored_hash != self.expected_sha256:
            problems.append(
                f"content hash recorded by the store {stored_hash} (manifest expects {self.expected_sha256})"
            )
        for d, size in zip(self.dims, self.shape):  # labels come from the manifest: they must fit the store
            if coords.get(d) is not None and len(coords[d]) != size:
                problems.append(f"dimension {d!r} has {size} entries, the manifest labels {len(coords[d])}")
        if problems:
            raise IntegrityError(
                f"world {world!r} array {name!r} ({self.path}) does not match the manifest: "
                + "; ".join(problems)
                + ". The store was changed after the manifest was "
                "written (or the manifest was edited); rebuild dataset_manifest or the world"
            )
        self.chunk_rows = int(self._z.chunks[0])
        self._chunk_shape = tuple(int(c) for c in self._z.chunks)
        self._chunk_grid = [range(-(-s // c)) for s, c in zip(self.shape[1:], self._z.chunks[1:])]
        self.n_chunks = -(-self.shape[0] // self.chunk_rows)
        self.coords = {d: coords.get(d) for d in self.dims}
        self.units = dict(units)
        self._direct = direct_layout(meta, self.shape)
        self.chunk_nbytes = int(np.prod(self._chunk_shape)) * self.dtype.itemsize

    # ---- description ----------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def attrs(self) -> dict:
        """The Zarr attributes of the array (descriptions, provenance)."""
        return dict(self._z.attrs)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        dims = ", ".join(f"{d}: {s}" for d, s in zip(self.dims, self.shape))
        return f"<LazyArray {self.world}/{self.name} ({dims}) {self.dtype}>"

    # ---- chunk access -----------------------------------------------------------------------
    def chunk_range(self, c: int) -> tuple[int, int]:
        """``(first row, end row)`` of sample chunk ``c``.

        Parameters
        ----------
        c : int
            The chunk's index along ``sample``.

        Returns
        -------
        tuple of int
        """
        lo = c * self.chunk_rows
        return lo, min(lo + self.chunk_rows, self.shape[0])

    def _chunk_folders(self, c: int) -> list[Folder]:
        enc = self._z.metadata.chunk_key_encoding
        return [self.folder.join(enc.encode_chunk_key((c, *rest))) for rest in itertools.product(*self._chunk_grid)]

    def chunk_files(self, c: int) -> list:
        """The file(s) holding sample chunk ``c`` (paths, or URLs on object storage).

        Parameters
        ----------
        c : int
            The chunk's index along ``sample``.

        Returns
        -------
        list
            Paths (local) or URLs (object storage).
        """
        return [f.path for f in self._chunk_folders(c)]

    def read_chunk(self, c: int) -> np.ndarray:
        """Decode sample chunk ``c`` (rows ``c*chunk_rows`` onward; read-only); :class:`IntegrityError` if it
        is missing or fails its checksum.

        Parameters
        ----------
        c : int
            The chunk's index along ``sample``, ``0 .. n_chunks - 1``.

        Returns
        -------
        numpy.ndarray
            The chunk's rows (the last chunk may be shorter), read-only.
        """
        if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < self.n_chunks:
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: chunk {c!r} is not an integer in 0..{self.n_chunks - 1}"
            )
        c = int(c)
        lo, hi = self.chunk_range(c)
        files = self._chunk_folders(c)
        if self._direct is not None:
            codec, _, sep = self._direct
            f = self.folder.join(sep.join(["c", str(c), *("0" * (self.ndim - 1))]))
            try:
                data = f.read_bytes()
            except FileNotFoundError:
                raise IntegrityError(
                    f"world {self.world!r} array {self.name!r}: chunk file {f} (samples {lo}..{hi - 1}) is missing"
                ) from None
            except OSError as exc:
                raise IntegrityError(
                    f"world {self.world!r} array {self.name!r}: chunk file {f} (samples {lo}..{hi - 1}) "
                    f"cannot be read: {exc}"
                ) from exc
            try:
                return codec.decode(data, self._chunk_shape)[: hi - lo]
            except Exception as exc:  # crc32c mismatch, truncated or undecodable chunk
                raise IntegrityError(
                    f"world {self.world!r} array {self.name!r}: chunk file {f} "
                    f"(samples {lo}..{hi - 1}) is corrupt: {exc}"
                ) from exc
        missing = [f for f in files if not f.is_file()]
        if missing:
            raise IntegrityError(
                f"world {self.world!r} array {self.name!r}: chunk file {missing[0]} (samples {lo}..{hi - 1}) is missing"
            )
        try:
            block = np.asarray(self._z[lo:hi])
        except Exception as exc:  # crc32c mismatch, truncated or undecodable chunk
            where = files[0] if len(files) == 1 else f"{files[0]} (one of {len(files)} files)"
            raise IntegrityError(
                f"world {self.world!r} array {self.name!r}: chunk file {where} "
                f"(samples {lo}..{hi - 1}) is corrupt: {exc}"
            ) from exc
        block.setflags(write=False)
        return block

    def iter_chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(first sample, decoded chunk)`` in storage order.

        Yields
        ------
        tuple of (int, numpy.ndarray)
        """
        for c in range(self.n_chunks):
            yield self.chunk_range(c)[0], self.read_chunk(c)

    # ---- reading ----------------------------------------------------------------------------
    def take(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows ``indices`` (any order, repeats allowed) along ``sample``, reading each needed chunk once.

        Parameters
        ----------
        indices : sequence of int or numpy.ndarray
            Sample indices (negative ones count from the end) or a boolean mask over all samples.

        Returns
        -------
        numpy.ndarray
            ``(len(indices), *shape[1:])``, in the order asked for.
        """
        try:
            idx = np.asarray(indices)
        except (TypeError, ValueError) as exc:  # ragged or absurdly nested sequences
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: sample indices must be a 1-d integer array ({exc})"
            ) from None
        if idx.dtype == bool:
            if idx.shape != (self.shape[0],):
                raise ReadArgumentError(
                    f"world {self.world!r} array {self.name!r}: boolean sample mask must have "
                    f"shape ({self.shape[0]},); got {idx.shape}"
                )
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: sample indices must be a 1-d "
                f"integer array; got dtype {idx.dtype}, shape {idx.shape}"
            )
        n = self.shape[0]
        if idx.size and (idx.min() < -n or idx.max() >= n):  # before the int64 cast, which wraps uint64
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: sample index {bad} out of range for {n} samples"
            )
        idx = idx.astype(np.int64)
        idx = np.where(idx < 0, idx + n, idx)
        out = np.empty((idx.size, *self.shape[1:]), dtype=self.dtype)
        if not idx.size:
            return out
        chunk_of = idx // self.chunk_rows
        order = np.argsort(chunk_of, kind="stable")
        cuts = np.flatnonzero(np.diff(chunk_of[order])) + 1
        for group in np.split(order, cuts):
            c = int(chunk_of[group[0]])
            block = self.read_chunk(c)
            out[group] = block[idx[group] - c * self.chunk_rows]
        return out

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if sum(k is Ellipsis for k in key) > 1:
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: invalid index {key!r} (an index "
                f"can only have a single ellipsis)"
            )
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            fill = self.ndim - (len(key) - 1)
            key = key[:i] + (slice(None),) * max(fill, 0) + key[i + 1 :]
        if not key:
            key = (slice(None),)
        first, rest = key[0], key[1:]
        if not isinstance(first, slice) and any(
            isinstance(k, (list, tuple, bool, np.bool_)) or isinstance(k, np.ndarray) and k.ndim > 0 for k in rest
        ):
            # numpy would broadcast these indices together (and may move axes); this reader indexes the sample
            # axis first, so the results would differ: refuse rather than answer differently from numpy
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r}: invalid index {key!r}: an integer or "
                f"index array on the sample axis together with an index array on another axis "
                f"is ambiguous; index the samples first, then the result"
            )
        try:  # the key beyond the sample axis, tried on an empty array of the same shape: nothing is read
            np.empty((0, *self.shape[1:]), dtype=self.dtype)[(slice(None), *rest)]
            if isinstance(first, slice):
                idx = np.arange(self.shape[0])[first]
        except (IndexError, TypeError, ValueError, OverflowError) as exc:
            raise ReadArgumentError(
                f"world {self.world!r} array {self.name!r} with dimensions {self.dims} and "
                f"shape {self.shape}: invalid index {key!r} ({exc})"
            ) from None
        if isinstance(first, (int, np.integer)) and not isinstance(first, bool):
            return self.take([first])[0][rest]
        if not isinstance(first, slice):
            idx = first
        return self.take(idx)[(slice(None), *rest)]

    def read(self) -> np.ndarray:
        """The whole array (explicit, since it loads everything into memory).

        Returns
        -------
        numpy.ndarray
        """
        return self[:]

    # ---- integrity --------------------------------------------------------------------------
    def compute_sha256(self) -> str:
        """Recompute the content hash (:mod:`macro_data.hashing`) by decoding every chunk; a missing or
        corrupt chunk raises :class:`IntegrityError` naming its file.

        Returns
        -------
        str
            The sha256, hex.
        """
        dtype = self.dtype.newbyteorder("<") if self.dtype.itemsize > 1 else self.dtype
        return hash_blocks(_segments(block for _, block in self.iter_chunks()), dtype)

    def verify(self) -> str:
        """Recompute the content hash; :class:`IntegrityError` unless it equals the manifest's.

        Returns
        -------
        str
            The sha256, hex (equal to the manifest's).
        """
        if self.hash_algorithm != HASH_ALGORITHM:
            raise IntegrityError(
                f"world {self.world!r} array {self.name!r}: cannot verify: the manifest's hash "
                f"algorithm is {self.hash_algorithm!r}, this version of macro_data computes "
                f"{HASH_ALGORITHM!r}"
            )
        actual = self.compute_sha256()
        if actual != self.expected_sha256:
            raise IntegrityError(
                f"world {self.world!r} array {self.name!r} ({self.path}): content hash mismatch: "
                f"manifest expects sha256 {self.expected_sha256}, the stored data hashes to "
                f"{actual}; the data is corrupt or was modified, refusing to use it"
            )
        return actual


class WorldData:
    """One world of a dataset: its description (from the manifest) and its arrays.

    Parameters
    ----------
    dataset : DatasetCore
        The dataset it belongs to.
    name : str
        The world's id.
    entry : Mapping
        The world's entry of the manifest.
    """

    def __init__(self, dataset: DatasetCore, name: str, entry: Mapping):
        self.dataset = dataset
        self.name = name
        self.entry = entry
        self.n_samples = int(entry["n_samples"])
        self.parameters: tuple[dict, ...] = tuple(entry["parameters"])
        self.parameter_names = tuple(p["name"] for p in self.parameters)
        self.shocks = tuple(entry["shocks"])
        self.observables = tuple(o["name"] for o in entry["observables"])
        self.extras = tuple(o["name"] for o in entry["extras"])
        self.priors: dict[str, dict] = dict(entry.get("priors") or {})
        self.split_labels: dict[str, int] = dict(dataset.manifest["split_labels"])
        coords = {
            "sample": None,
            "time": tuple(range(dataset.T)),
            "horizon": tuple(range(dataset.H + 1)),
            "param": self.parameter_names,
            "shock": self.shocks,
            "observable": self.observables,
            "extra": self.extras,
            "moment": MOMENTS,
        }
        # the state variables, described by whichever of the state IRFs and the burn-in the world has
        svars = (entry.get("state_irfs") or entry.get("burn_in") or {}).get("state_variables") or []
        if svars:
            coords["state_var"] = tuple(v["name"] for v in svars)
        obs_units = {o["name"]: o["unit"] for o in entry["observables"]}
        units = {
            "theta": {p["name"]: p["unit"] for p in self.parameters},
            "shocks": {s: SHOCK_UNIT for s in self.shocks},
            "trajectories": obs_units,
            "observed": obs_units,  # trajectories plus measurement noise (recipes with noise)
            "irfs": obs_units,
            "extras": {o["name"]: o["unit"] for o in entry["extras"]},
            "states": {v["name"]: v["unit"] for v in svars},
            "initial_state": {v["name"]: v["unit"] for v in svars},
        }
        algorithm = dataset.manifest["hash"]["algorithm"]
        self.arrays: dict[str, LazyArray] = {
            a: LazyArray(name, a, dataset.folder, spec, coords, units.get(a, {}), algorithm)
            for a, spec in entry["arrays"].items()
        }
        theta = self.arrays["theta"]
        if theta.shape[0] != self.n_samples or theta.shape[1] != len(self.parameters):
            raise IntegrityError(
                f"world {name!r}: theta has shape {theta.shape}, the manifest describes "
                f"{self.n_samples} samples of {len(self.parameters)} parameters"
            )
        stats_entry = entry.get(STATS_KEY)
        # The stored statistics (train-split moments), opened like any array: layout and recorded hash
        # checked now, chunks checksummed when read, content hash recomputed by verify().
        self.stats_arrays: dict[str, LazyArray] = (
            {
                a: LazyArray(
                    name, spec["path"].rsplit("/", 1)[-1], dataset.folder, spec, coords, units.get(a, {}), algorithm
                )
                for a, spec in stats_entry["arrays"].items()
            }
            if stats_entry
            else {}
        )
        self._stats: WorldStats | None = None
        self._split_cache: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return (
            f"<WorldData {self.name}: {self.n_samples} samples, {len(self.parameters)} parameters, "
            f"shocks {list(self.shocks)}, arrays {list(self.arrays)}>"
        )

    def __getitem__(self, array: str) -> LazyArray:
        return self.array(array)

    def array(self, array: str) -> LazyArray:
        """The lazy array ``array`` (e.g. ``"theta"``, ``"irfs"``); :class:`ReadArgumentError` naming the
        world's arrays otherwise.

        Parameters
        ----------
        array : str
            The array's name.

        Returns
        -------
        LazyArray
        """
        if not isinstance(array, str) or array not in self.arrays:
            raise ReadArgumentError(f"world {self.name!r}: unknown array {array!r}; its arrays: {known(self.arrays)}")
        return self.arrays[array]

    @property
    def index(self) -> int:
        """The world's position in the dataset's world list (the manifest's order): ``world_index`` in batches."""
        return self.dataset.available_worlds.index(self.name)

    # ---- splits -----------------------------------------------------------------------------
    @property
    def split_sizes(self) -> dict[str, int]:
        """Samples per split, as the manifest records them."""
        return {s: int(v["count"]) for s, v in self.entry["splits"].items()}

    def check_split(self, split: str) -> str:
        """``split`` if the dataset has that split, else :class:`ReadArgumentError` naming the splits.

        Parameters
        ----------
        split : str
            A split's name (``train``, ``val``, ``test``...).

        Returns
        -------
        str
            ``split``.
        """
        if not isinstance(split, str) or split not in self.split_labels:
            raise ReadArgumentError(
                f"unknown split {split!r}; splits: {known(self.split_labels)} (or None for all samples)"
            )
        return split

    def split_indices(self, split: str | Sequence[str] | None) -> np.ndarray:
        """Sorted sample indices of one or more splits.

        The labels are read chunk by chunk; the set is checked against the manifest's count and
        ``index_hash`` (:class:`IntegrityError` if they differ).

        Parameters
        ----------
        split : str, list of str or None
            A split name, a list of them (their union), or ``None`` for every sample.

        Returns
        -------
        numpy.ndarray
            Sorted int64 sample indices (read-only).
        """
        if split is None:
            return np.arange(self.n_samples, dtype=np.int64)
        if not isinstance(split, str):
            names = names_arg("split", split)
            if not names:
                raise ReadArgumentError("split: an empty list of splits selects nothing")
            return np.unique(np.concatenate([self.split_indices(s) for s in names]))
        self.check_split(split)
        if split not in self._split_cache:
            label = self.split_labels[split]
            parts = [lo + np.flatnonzero(block == label) for lo, block in self.arrays["split"].iter_chunks()]
            idx = np.concatenate(parts).astype(np.int64)
            info = self.entry["splits"][split]
            digest = hashlib.sha256(idx.astype("<i8").tobytes()).hexdigest()
            if idx.size != info["count"] or digest != info["index_hash"]:
                raise IntegrityError(
                    f"world {self.name!r} split {split!r}: the stored labels give {idx.size} samples "
                    f"with index hash {digest}, the manifest records {info['count']} samples with "
                    f"index hash {info['index_hash']}"
                )
            idx.setflags(write=False)
            self._split_cache[split] = idx
        return self._split_cache[split]

    # ---- parameters and statistics ---------------------------------------------------------------
    def normalizer(
        self, bounds: str = "prior", derived: str | Mapping[str, tuple[float, float]] = "identity"
    ) -> ParameterNormalizer:
        """The prior-based :class:`~macro_data.read.normalize.ParameterNormalizer` of this world's theta.

        Parameters
        ----------
        bounds : {"prior", "parameters"}
            The recipe's prior bounds, or the world's full parameter bounds.
        derived : "identity" or mapping
            ``{name: (mean, sd)}`` to standardize derived parameters, e.g. :meth:`theta_moments`.

        Returns
        -------
        ParameterNormalizer
        """
        return ParameterNormalizer.from_manifest(self.entry, bounds=bounds, derived=derived)

    @property
    def has_stats(self) -> bool:
        """Were the train-split statistics built and published with this world?"""
        return bool(self.stats_arrays)

    @property
    def stats(self) -> WorldStats:
        """The train-split statistics stored with the data (:mod:`macro_data.read.stats`), read once.

        Raises :class:`ReadArgumentError` when the dataset was built without them.
        """
        if not self.has_stats:
            raise ReadArgumentError(
                f"world {self.name!r} of dataset {self.dataset.name} {self.dataset.version} was built without "
                f"output statistics (no {STATS_KEY} in its manifest entry): normalize='stats', "
                f"normalize_outputs=True and the stored moments need them. Materialize world_stats and "
                f"dataset_manifest, or use normalize=True (prior bounds) or normalize=False"
            )
        if self._stats is None:
            stored = {a: arr.read() for a, arr in self.stats_arrays.items()}
            self._stats = WorldStats(self.name, self.entry[STATS_KEY], stored)
        return self._stats

    def stats_normalizer(self) -> ParameterNormalizer:
        """theta standardized with the stored train-split moments (every column, derived included).

        Returns
        -------
        ParameterNormalizer
        """
        return ParameterNormalizer.from_stats(self.entry, self.stats)

    def theta_moments(self, split: str | Sequence[str] | None = "train") -> dict[str, tuple[float, float]]:
        """Per-parameter ``(mean, sd)`` of theta over ``split``, streamed chunk by chunk (float64).

        Computed from the data now (the stored statistics, for the train split, are :attr:`stats`),
        e.g. to standardize ``derived`` parameters: ``world.normalizer(derived=world.theta_moments("train"))``.

        Parameters
        ----------
        split : str, list of str or None
            The samples to use (default ``"train"``).

        Returns
        -------
        dict
            ``{parameter name: (mean, sd)}`` with ``sd`` computed with ``ddof = 1``.
        """
        idx = self.split_indices(split)
        theta = self.arrays["theta"]
        count, mean, m2 = 0, np.zeros(theta.shape[1]), np.zeros(theta.shape[1])
        bounds = np.searchsorted(idx, [theta.chunk_range(c)[0] for c in range(theta.n_chunks)] + [theta.shape[0]])
        for c in range(theta.n_chunks):
            sel = idx[bounds[c] : bounds[c + 1]]
            if not sel.size:
                continue
            block = theta.read_chunk(c)[sel - c * theta.chunk_rows].astype(np.float64)
            k, bmean = block.shape[0], block.mean(axis=0)
            bm2 = ((block - bmean) ** 2).sum(axis=0)
            delta = bmean - mean
            total = count + k
            mean = mean + delta * (k / total)  # Chan et al. parallel update: stable for any chunking
            m2 = m2 + bm2 + delta**2 * (count * k / total)
            count = total
        if count < 2:
            raise ReadArgumentError(
                f"world {self.name!r}: split {split!r} has {count} samples; at least 2 are needed for moments"
            )
        sd = np.sqrt(m2 / (count - 1))
        return {name: (float(m), float(s)) for name, m, s in zip(self.parameter_names, mean, sd)}

    # ---- integrity --------------------------------------------------------------------------
    def verify(self, arrays: Sequence[str] | None = None) -> dict[str, str]:
        """Recompute content hashes; raises on the first mismatch or bad chunk.

        Verifying all arrays (the default) also checks the stored statistics, the coordinate arrays
        and every split's index set.

        Parameters
        ----------
        arrays : list of str, optional
            Data arrays to verify (default: all, plus statistics, labels and splits).

        Returns
        -------
        dict
            ``{array: content hash}`` (the statistics under their stored names, ``moments_<array>``).
        """
        names = list(self.arrays) if arrays is None else [self.array(a).name for a in names_arg("arrays", arrays)]
        hashes = {a: self.arrays[a].verify() for a in names}
        if arrays is None:
            for arr in self.stats_arrays.values():
                hashes[arr.name] = arr.verify()
            self.verify_labels()
            for split in self.split_labels:
                self.split_indices(split)
        return hashes

    def verify_labels(self) -> None:
        """The store's coordinate arrays (names, ``time``, ``horizon``, ``moment``) equal the labels the
        manifest gives."""
        expected = {
            "param": self.parameter_names,
            "shock": self.shocks,
            "observable": self.observables,
            "extra": self.extras,
            "time": tuple(range(self.dataset.T)),
            "horizon": tuple(range(self.dataset.H + 1)),
            "moment": MOMENTS,
        }
        # Each coordinate array sits beside the arrays it labels (one group per stage on object storage).
        owners: dict[str, list[Folder]] = {}
        for arr in [*self.arrays.values(), *self.stats_arrays.values()]:
            for d in arr.dims:
                if d in expected:
                    owners.setdefault(d, []).append(arr.folder.parent)
        for d in sorted(owners):
            candidates = list({str(f): f for f in owners[d]}.values())
            where = next((f.join(d) for f in candidates if f.join(d, "zarr.json").is_file()), candidates[0].join(d))
            try:
                values = np.asarray(where.open_array()[...]).tolist()
            except Exception as exc:  # missing, truncated or checksum-failing coordinate array
                raise IntegrityError(
                    f"world {self.name!r}: coordinate array {d!r} ({where}) cannot be read: {exc}"
                ) from exc
            if [str(v) for v in values] != [str(v) for v in expected[d]]:
                raise IntegrityError(
                    f"world {self.name!r}: coordinate array {d!r} ({where}) holds "
                    f"{[str(v) for v in values][:12]}, the manifest labels the dimension "
                    f"{[str(v) for v in expected[d]][:12]}; the manifest or the store was changed"
                )


class DatasetCore:
    """A published dataset: its manifest and, per world, a :class:`WorldData` (views are added by
    :class:`macro_data.read.dataset.Dataset`).

    Parameters
    ----------
    folder : Folder
        The dataset folder.
    manifest : dict
        Its manifest, validated.
    worlds : sequence of str, optional
        The worlds to open (default: all).
    """

    def __init__(self, folder: Folder, manifest: dict, worlds: Sequence[str] | None = None):
        self.folder = folder
        self.path = folder.path
        self.manifest = manifest
        self.name = manifest["dataset"]["name"]
        self.version = manifest["dataset"]["version"]
        self.T = int(manifest["T"])
        self.H = int(manifest["H"])
        self.seed = int(manifest["recipe"]["seed"])
        self.split_names: tuple[str, ...] = tuple(manifest["split_labels"])
        available = tuple(manifest["worlds"])
        if worlds is None:
            selected = available
        else:
            worlds = names_arg("worlds", worlds)
            unknown = [w for w in worlds if w not in available]
            if unknown:
                raise ReadArgumentError(
                    f"worlds: {unknown[0]!r} is not in dataset {self.name} {self.version} "
                    f"(its worlds: {known(available)})"
                )
            selected = tuple(w for w in available if w in set(worlds))
        self.available_worlds = available
        self._worlds = {w: WorldData(self, w, manifest["worlds"][w]) for w in selected}
        self._output_norms: dict[str, OutputNormalizer] = {}

    @property
    def worlds(self) -> tuple[str, ...]:
        """The opened worlds, in the manifest's order."""
        return tuple(self._worlds)

    @property
    def p_max(self) -> int:
        """The largest number of parameters of any world of the dataset (opened or not)."""
        return max(len(e["parameters"]) for e in self.manifest["worlds"].values())

    @property
    def s_max(self) -> int:
        """The largest number of shocks of any world of the dataset (opened or not)."""
        return max(len(e["shocks"]) for e in self.manifest["worlds"].values())

    @property
    def has_stats(self) -> bool:
        """Do all opened worlds carry stored train-split statistics?"""
        return all(w.has_stats for w in self._worlds.values())

    def __getitem__(self, world: str) -> WorldData:
        if not isinstance(world, str) or world not in self._worlds:
            extra = (
                f"; {world!r} is in the dataset but was not opened (worlds=...)"
                if world in self.available_worlds
                else ""
            )
            raise ReadArgumentError(f"unknown world {world!r}; opened worlds: {known(self._worlds)}{extra}")
        return self._worlds[world]

    def __iter__(self) -> Iterator[str]:
        return iter(self._worlds)

    def __contains__(self, world: object) -> bool:
        return world in self._worlds

    def __len__(self) -> int:
        return len(self._worlds)

    def __repr__(self) -> str:
        return (
            f"<Dataset {self.name} {self.version} at {self.path}: T={self.T}, H={self.H}, "
            f"worlds {', '.join(f'{w} ({d.n_samples})' for w, d in self._worlds.items())}>"
        )

    # ---- rows of a batch by world, and the inverse transform of outputs ---------------------------
    def world_rows(self, worlds, n: int) -> list[tuple[str, np.ndarray]]:
        """The rows of a batch grouped by world: ``[(world, row indices)]`` in dataset order.

        Parameters
        ----------
        worlds : str, list of str or numpy.ndarray
            One world per row (a batch's ``world_ids`` or ``world_index``), or one name for all rows.
        n : int
            The number of rows.

        Returns
        -------
        list of (str, numpy.ndarray)
        """
        if isinstance(worlds, str):
            worlds = [worlds] * n
        values = np.asarray(worlds)
        if values.shape != (n,):
            raise ReadArgumentError(f"worlds must give one world per row ({n}); got shape {values.shape}")
        if values.dtype.kind in "iu":
            keys, names = values.astype(np.int64), {self[w].index: w for w in self.worlds}
            what = "world_index"
        else:
            keys, names = values.astype(str), {w: w for w in self.worlds}
            what = "world"
        uniq, inverse = np.unique(keys, return_inverse=True)
        bad = [v for v in uniq.tolist() if v not in names]
        if bad:
            raise ReadArgumentError(
                f"worlds: {what} {bad[0]!r} is not an opened world (allowed: {known(map(str, names))})"
            )
        inverse = inverse.reshape(-1)
        return [(names[v], np.flatnonzero(inverse == k)) for k, v in enumerate(uniq.tolist())]

    def output_normalizer(self, world: str) -> OutputNormalizer:
        """The standardization of ``world``'s outputs by its stored train-split moments.

        Parameters
        ----------
        world : str
            The world's id.

        Returns
        -------
        OutputNormalizer
        """
        if world not in self._output_norms:
            self._output_norms[world] = OutputNormalizer(self[world].stats)
        return self._output_norms[world]

    def denormalize_irf(self, irf: np.ndarray, worlds) -> np.ndarray:
        """Standardized IRFs (``normalize_outputs=True``) back in natural units, per world.

        Parameters
        ----------
        irf : numpy.ndarray
            ``(B, S, H + 1, 3)`` with ``S`` at least each row's world's number of shocks.
        worlds : str, list of str or numpy.ndarray
            The world of each row (``world_ids`` or ``world_index`` of the batch), or one name.

        Returns
        -------
        numpy.ndarray
            float32, same shape; shocks beyond a world's own are 0.
        """
        return self._irf_rows(irf, worlds, natural=False)

    def _irf_rows(self, irf: np.ndarray, worlds, natural: bool) -> np.ndarray:
        x = np.asarray(irf, dtype=np.float32)
        if x.ndim != 4 or x.shape[2:] != (self.H + 1, 3):
            raise ReadArgumentError(f"irf must have shape (B, S, {self.H + 1}, 3); got {x.shape}")
        out = np.zeros_like(x)
        for w, rows in self.world_rows(worlds, x.shape[0]):
            S = len(self[w].shocks)
            if x.shape[1] < S:
                raise ReadArgumentError(f"irf has {x.shape[1]} shocks on axis 1; world {w!r} has {S}")
            out[rows, :S] = x[rows, :S] if natural else self.output_normalizer(w).denormalize_irf(x[rows, :S])
        return out

    def verify(self, worlds: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
        """Recompute every content hash of the opened worlds (or ``worlds``).

        Also checks labels, splits and stored statistics (:meth:`WorldData.verify`) and the manifest
        against its recipe; :class:`IntegrityError` naming the world, array, expected and actual hash
        (or the corrupt chunk file) on failure.

        Parameters
        ----------
        worlds : list of str, optional
            Default: every opened world.

        Returns
        -------
        dict
            ``{world: {array: content hash}}``.
        """
        names = self.worlds if worlds is None else [self[w].name for w in names_arg("worlds", worlds)]
        self.verify_manifest()
        return {w: self._worlds[w].verify() for w in names}

    def verify_manifest(self) -> None:
        """The manifest agrees with the recipe it embeds: hash, T, H, worlds, sample counts, priors."""
        problems = recipe_problems(self.manifest)
        if problems:
            raise IntegrityError(
                f"manifest {self.folder.join(MANIFEST_NAME)} contradicts its own recipe: "
                + "; ".join(problems)
                + ". The manifest was edited; rebuild dataset_manifest"
            )
