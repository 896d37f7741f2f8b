"""The on-disk format: one directory per checkpoint, nothing pickled.

``<directory>/<epoch>/``

* ``state.safetensors`` — every leaf of the train state in the `safetensors
  <https://huggingface.co/docs/safetensors>`_ layout (an 8-byte little-endian header length,
  a JSON header with each tensor's dtype, shape and byte offsets, then the raw bytes), written
  and read here with NumPy only (the ``safetensors`` package can open it too). Tensor names
  are the leaves' pytree paths in the canonical state (see :func:`canonical_state`). The
  header's ``__metadata__`` holds ``format``/``version``, a CRC-32 of the data (corruption is
  detected on load), ``structure`` (JSON: every leaf's path, shape, dtype and storage dtype;
  the names of the trainables, optimised trainables, weighting schemes and weight providers —
  restoring checks these against the live solver) and ``plugins`` (JSON state of weight
  providers and plugins implementing ``jno_state()``).
* ``metadata.json`` — ``epoch``, ``total_loss``, ``individual_losses``, ``checkpoint_dir``,
  ``timestamp`` (and ``best_value`` when ``best_fn`` is set), as the spec lists them.

A checkpoint is written into ``<directory>/.tmp-<epoch>-<pid>``, both files are fsync'd, and the
directory is renamed to ``<epoch>`` (``os.replace``, atomic on POSIX) and the parent fsync'd: a
process killed mid-write leaves a ``.tmp-*`` directory that is ignored (and removed by the next
writer once its process is gone), never a partial ``<epoch>``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any, Mapping

import attrs
import jax
import jax.numpy as jnp
import numpy as np

from jno_core.api import CheckpointError

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointData",
    "canonical_state",
    "state_from_canonical",
    "flatten_state",
    "describe_leaves",
    "to_host",
    "HostCopier",
    "from_host",
    "write_state_file",
    "read_state_file",
    "write_checkpoint_dir",
    "read_checkpoint",
    "list_steps",
]

FORMAT = "jno-checkpoint"
VERSION = 1
STATE_FILE = "state.safetensors"
METADATA_FILE = "metadata.json"
#: safetensors dtype codes
_CODES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
    "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}
_NAMES = {v: k for k, v in _CODES.items()}
_CODE_BY_DTYPE: dict[Any, str] = {}  # np.dtype -> safetensors code, filled on use
_EXTENDED = ("bfloat16", "float8_e4m3fn", "float8_e5m2")  # dtypes NumPy knows through ml_dtypes


@attrs.define
class CheckpointData:
    """A checkpoint read from disk.

    :ivar step: the epoch it holds; :ivar path: its directory.
    :ivar metadata: the ``metadata.json`` dict.
    :ivar arrays: ``{canonical leaf path: np.ndarray}`` — the whole train state, flattened
        (``['params']['000'].output_layer.weight``, ``['opt_states'][...]``,
        ``['schemes'][...]``, ``['epoch']``).
    :ivar structure: the ``structure`` record; :ivar plugin_state: the ``plugins`` record.
    """

    step: int
    path: Path
    metadata: dict[str, Any]
    arrays: dict[str, np.ndarray]
    structure: dict[str, Any]
    plugin_state: dict[str, Any]

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The parameter leaves only (``{path: array}``)."""
        return {k: v for k, v in self.arrays.items() if k.startswith("['params']")}


# ---------------------------------------------------------------------------- canonical form
def _labels(crux: Any) -> dict[str, str]:
    """Process-independent labels for the solver's trainables: their index in the solver
    (``"000"``, ...). The core's keys contain ``id()``, and automatic network names
    (``net0``, ``net1``) depend on how many networks the process built before, so neither is
    stable; the names are recorded in ``structure.json`` for messages only."""
    return {k: f"{i:03d}" for i, k in enumerate(crux.trainables)}


def _scheme_labels(crux: Any) -> dict[str, str]:
    return {k: f"{i:03d}:{s.name}" for i, (k, s) in enumerate(crux.schemes.items())}


def canonical_state(crux: Any, state: Any) -> dict[str, Any]:
    """``state = (params, opt_states, scheme_states, epoch)`` re-keyed by stable labels."""
    params, opt, schemes, epoch = state
    lab = _labels(crux)
    slab = _scheme_labels(crux)
    return {
        "params": {lab[k]: params[k] for k in crux.trainables},
        "opt_states": {lab[k]: opt[k] for k in crux.trained_keys},
        "schemes": {slab[k]: schemes[k] for k in crux.schemes},
        "epoch": epoch,
    }


def state_from_canonical(crux: Any, canon: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """The inverse of :func:`canonical_state` for ``crux``."""
    lab = _labels(crux)
    slab = _scheme_labels(crux)
    params = {k: canon["params"][lab[k]] for k in crux.trainables}
    opt = {k: canon["opt_states"][lab[k]] for k in crux.trained_keys}
    schemes = {k: canon["schemes"][slab[k]] for k in crux.schemes}
    return params, opt, schemes, canon["epoch"]


def _is_key(x: Any) -> bool:
    dt = getattr(x, "dtype", None)
    return dt is not None and not isinstance(dt, np.dtype) and jax.dtypes.issubdtype(dt, jax.dtypes.prng_key)


def flatten_state(crux: Any, state: Any) -> tuple[list[str], list[Any], Any]:
    """``(paths, leaves, treedef)`` of the canonical state (leaves still on the device)."""
    with_path, treedef = jax.tree_util.tree_flatten_with_path(canonical_state(crux, state))
    return [jax.tree_util.keystr(p) for p, _ in with_path], [leaf for _, leaf in with_path], treedef


def describe_leaves(paths: list[str], leaves: list[Any]) -> list[dict[str, Any]]:
    """The ``structure`` leaf records: path, shape, dtype, storage dtype (typed PRNG keys are
    stored as their key data, with the key implementation)."""
    info = []
    for p, leaf in zip(paths, leaves):
        d: dict[str, Any] = {"path": p, "shape": list(np.shape(leaf)), "dtype": str(leaf.dtype)}
        if _is_key(leaf):
            d["key_impl"] = str(jax.random.key_impl(leaf))
            d["stored"] = str(jax.random.key_data(leaf).dtype)
        else:
            d["stored"] = str(np.dtype(leaf.dtype))
        if d["stored"] not in _CODES:
            raise CheckpointError(
                f"cannot checkpoint leaf {p} of dtype {d['stored']}; supported dtypes: {sorted(_CODES)}."
            )
        info.append(d)
    return info


class HostCopier:
    """Copies a fixed list of leaves to the host in one transfer per dtype: a compiled function
    concatenates the (flattened) leaves of each dtype on the device, the host splits them
    back. About 4x cheaper than ``jax.device_get`` of ~40 small leaves one by one."""

    def __init__(self, leaves: list[Any]) -> None:
        self.shapes = [tuple(np.shape(x)) for x in leaves]
        self.keys = [_is_key(x) for x in leaves]
        dts = [str((jax.random.key_data(x) if k else x).dtype) for x, k in zip(leaves, self.keys)]
        self.groups: dict[str, list[int]] = {}
        for i, d in enumerate(dts):
            self.groups.setdefault(d, []).append(i)
        self.full_shapes = [tuple(np.shape(jax.random.key_data(x))) if k else s
                            for x, k, s in zip(leaves, self.keys, self.shapes)]
        keys, groups = self.keys, self.groups

        def pack(xs: list[Any]) -> list[jax.Array]:
            xs = [jax.random.key_data(x) if k else x for x, k in zip(xs, keys)]
            return [jnp.concatenate([jnp.ravel(xs[i]) for i in idx]) for idx in groups.values()]

        self._pack = jax.jit(pack).lower(leaves).compile()

        self._slices = []  # (leaf index, group, start, stop, shape)
        for g, idx in enumerate(groups.values()):
            pos = 0
            for i in idx:
                n = int(np.prod(self.full_shapes[i], dtype=np.int64))
                self._slices.append((i, g, pos, pos + n, self.full_shapes[i]))
                pos += n

    def __call__(self, leaves: list[Any]) -> list[jax.Array]:
        """The packed buffers (one per dtype), dispatched and not waited for: the caller
        (the training thread) does not block on the device (where the pack may queue behind
        a chunk already started); :meth:`split` copies them to the host and splits them into
        leaves (do that off the training thread). JAX arrays are immutable and the loop
        donates no buffer, so the packed values are those of ``leaves`` at this call."""
        return self._pack(leaves)

    def split(self, flats: list[Any]) -> list[np.ndarray]:
        """Host leaves (views into the host copies of ``flats``), in the order of the leaves
        given at init (blocks until the pack of :meth:`__call__` has run)."""
        flats = [np.asarray(a) for a in flats]
        out: list[Any] = [None] * len(self.shapes)
        for i, g, a, b, shape in self._slices:
            out[i] = flats[g][a:b].reshape(shape)
        return out


def to_host(leaves: list[Any]) -> list[np.ndarray]:
    """One device-to-host copy of every leaf (typed PRNG keys as their key data)."""
    return [np.asarray(a) for a in jax.device_get([jax.random.key_data(x) if _is_key(x) else x for x in leaves])]


def from_host(host: list[np.ndarray], info: list[dict[str, Any]]) -> list[Any]:
    """Leaves as the solver holds them, from host arrays (re-wrapping PRNG keys)."""
    return [jax.random.wrap_key_data(jnp.asarray(a), impl=d["key_impl"]) if "key_impl" in d else a
            for a, d in zip(host, info)]


def write_state_file(f: Any, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Write ``arrays`` (``{name: array}``, in order) and the string map ``metadata`` to the
    open binary file ``f`` in the safetensors layout."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    offset = 0
    chunks = []
    for name, a in arrays.items():
        a = np.ascontiguousarray(a).reshape(np.shape(a))
        b = a.tobytes()
        code = _CODE_BY_DTYPE.get(a.dtype)
        if code is None:  # str(dtype) costs ~4 us (numpy's name machinery): once per dtype
            code = _CODE_BY_DTYPE[a.dtype] = _CODES[str(a.dtype)]
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        chunks.append(b)
    data = b"".join(chunks)
    header["__metadata__"]["crc32"] = str(zlib.crc32(data))
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    f.write(struct.pack("<Q", len(head)))
    f.write(head)
    f.write(data)


def read_state_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({name: array}, metadata)`` from a file written by :func:`write_state_file`
    (validated: header, offsets, length and CRC-32)."""

    def corrupt(why: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint file {path} is corrupt or truncated ({why}). Restore another step "
            "(cb.all_steps lists them)."
        )

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} is missing; restore another step.") from None
    if len(raw) < 8:
        raise corrupt(f"{len(raw)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise corrupt(f"header of {n} bytes announced, {len(raw) - 8} bytes in the file")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
        meta = dict(header.pop("__metadata__"))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise corrupt(f"unreadable header: {exc}") from None
    data = raw[8 + n :]
    need = max((t["data_offsets"][1] for t in header.values()), default=0) if header else 0
    if len(data) != need:
        raise corrupt(f"{len(data)} data bytes, expected {need}")
    if "crc32" in meta and str(zlib.crc32(data)) != meta["crc32"]:
        raise corrupt("CRC-32 of the data does not match the header")
    arrays = {}
    for name, t in header.items():
        try:
            name_ = _NAMES[t["dtype"]]
            dt = np.dtype(getattr(jnp, name_)) if name_ in _EXTENDED else np.dtype(name_)
            b0, b1 = t["data_offsets"]
            arrays[name] = np.frombuffer(data[b0:b1], dtype=dt).reshape(t["shape"]).copy()
        except (KeyError, TypeError, ValueError) as exc:
            raise corrupt(f"tensor {name!r}: {exc}") from None
    return arrays, meta


def dumps(obj: Any) -> str:
    """The JSON text of a checkpoint file."""
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=True)


def _write_json(path: Path, obj: Any, fsync: bool) -> None:
    text = obj if isinstance(obj, str) else dumps(obj)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        if fsync:
            os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_checkpoint_dir(directory: Path, epoch: int, arrays: Mapping[str, np.ndarray], structure: dict[str, Any] | str,
                         plugin_state: dict[str, Any], metadata: dict[str, Any], fsync: bool = True) -> Path:
    """Write one checkpoint atomically; returns ``<directory>/<epoch>``.

    :param arrays: ``{leaf path: host array}`` in the order of ``structure["leaves"]``.
    :param structure: the structure record, or its JSON text (the same for every save of a
        solver, so callers serialise it once)."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / str(int(epoch))
    tmp = directory / f".tmp-{int(epoch)}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    struct_text = structure if isinstance(structure, str) else dumps(structure)
    with open(tmp / STATE_FILE, "wb") as f:
        write_state_file(f, arrays, {
            "format": FORMAT, "version": str(VERSION), "structure": struct_text, "plugins": dumps(plugin_state)})
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    _write_json(tmp / METADATA_FILE, metadata, fsync)
    if fsync:
        _fsync_dir(tmp)
    old = None
    if final.exists():  # re-saving an epoch: move the old one aside, then swap
        old = directory / f".old-{int(epoch)}-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(tmp, final)
    if fsync:
        _fsync_dir(directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove ``.tmp-*`` / ``.old-*`` directories left by writers that no longer run."""
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if not entry.name.startswith((".tmp-", ".old-")):
            continue
        try:
            pid = int(entry.name.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def list_steps(directory: Path) -> list[int]:
    """The epochs of the complete checkpoints in ``directory`` (sorted)."""
    try:
        with os.scandir(directory) as it:  # entry types from the listing: no stat per entry
            return sorted(int(e.name) for e in it if e.name.isdigit() and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


# ---------------------------------------------------------------------------- reading
def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint file {path} is missing; expected a complete checkpoint directory "
            f"({STATE_FILE}, {METADATA_FILE}). Restore another step."
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint file {path} is corrupt or truncated (not valid JSON: {exc}). Restore "
            "another step (cb.all_steps lists them)."
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint file {path} holds {type(obj).__name__}, expected a JSON object.")
    return obj


def read_checkpoint(path: str | os.PathLike[str]) -> CheckpointData:
    """Read the checkpoint directory ``path`` (never unpickling anything); raise
    :class:`~jno_core.errors.CheckpointError` naming the file when it is missing, truncated or
    corrupt."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint directory at {path}; pass a directory <checkpoints>/<epoch>.")
    metadata = _read_json(path / METADATA_FILE)
    state_file = path / STATE_FILE
    tensors, meta = read_state_file(state_file)
    if meta.get("format") != FORMAT or int(meta.get("version", -1)) > VERSION:
        raise CheckpointError(
            f"{state_file} is not a {FORMAT} v{VERSION} file (format {meta.get('format')!r}, "
            f"version {meta.get('version')!r})."
        )
    try:
        structure = json.loads(meta["structure"])
        plugin_state = json.loads(meta.get("plugins", "{}"))
        leaves = structure["leaves"]
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {state_file} has an unreadable structure record ({exc}).") from None
    arrays: dict[str, np.ndarray] = {}
    for d in leaves:
        a = tensors.get(d["path"])
        if a is None or list(a.shape) != list(d["shape"]) or str(a.dtype) != d["stored"]:
            raise CheckpointError(
                f"checkpoint file {state_file} is corrupt: leaf {d['path']} is "
                f"{'missing' if a is None else f'{list(a.shape)} {a.dtype}'}, expected {d['shape']} {d['stored']}."
            )
        arrays[d["path"]] = a
    step = int(metadata.get("epoch", path.name if path.name.isdigit() else -1))
    return CheckpointData(step, path, metadata, arrays, structure, plugin_state)
