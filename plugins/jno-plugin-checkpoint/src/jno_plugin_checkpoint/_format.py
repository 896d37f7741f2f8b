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
writer once its process is gone), never a partial ``<epoch>``. A failed write (full disk,
permissions, read-only file system) removes its ``.tmp-*`` directory before raising.

Reading never trusts the file: it opens it without following a symbolic link and refuses
anything but a regular file (a FIFO, a device), checks the header length and every tensor's
offsets against the file's size *before* reading the data, and requires both checksums
(a missing one is an error); every problem is a :class:`~jno_core.errors.CheckpointError`
naming the file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
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
    "begin_checkpoint_dir",
    "finish_checkpoint_dir",
    "discard",
    "remove_checkpoint_dir",
    "read_checkpoint",
    "list_steps",
]

FORMAT = "jno-checkpoint"
VERSION = 2  # 2: header_crc32 (version 1 files, without it, are still read)
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
    back. Several times cheaper than ``jax.device_get`` of a few dozen small leaves one by one
    (see benchmarks/README.md)."""

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


#: the placeholder of ``header_crc32`` while the header's checksum is computed
_HEADER_CRC_ZERO = "00000000"
_HEADER_CRC_RE = re.compile(rb'"header_crc32":"([0-9a-f]{8})"')
#: the largest header read (safetensors' own limit is 100 MB)
MAX_HEADER_BYTES = 100 * 2**20


def write_state_file(f: Any, arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Write ``arrays`` (``{name: array}``, in order) and the string map ``metadata`` to the
    open binary file ``f`` in the safetensors layout, with the data's CRC-32 (``crc32``) and
    the header's (``header_crc32``) in ``__metadata__``."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    offset = 0
    chunks = []
    for name, a in arrays.items():
        a = np.ascontiguousarray(a).reshape(np.shape(a))
        b = a.tobytes()
        code = _CODE_BY_DTYPE.get(a.dtype)
        if code is None:  # str(dtype) goes through numpy's name machinery: once per dtype
            code = _CODE_BY_DTYPE[a.dtype] = _CODES[str(a.dtype)]
        header[name] = {"dtype": code, "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        chunks.append(b)
    data = b"".join(chunks)
    header["__metadata__"]["crc32"] = str(zlib.crc32(data))
    header["__metadata__"]["header_crc32"] = _HEADER_CRC_ZERO
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * (-len(head) % 8)
    crc = f"{zlib.crc32(struct.pack('<Q', len(head)) + head):08x}".encode()
    head = head.replace(b'"header_crc32":"00000000"', b'"header_crc32":"' + crc + b'"', 1)
    f.write(struct.pack("<Q", len(head)))
    f.write(head)
    f.write(data)


def _open_regular(path: Path, what: str = "checkpoint file") -> int:
    """A read-only descriptor of ``path``, which must be a regular file: a symbolic link is not
    followed, and a FIFO or device is refused without blocking (``O_NONBLOCK``)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path} is missing; restore another step (cb.all_steps lists them).") from None
    except OSError as exc:
        if os.path.islink(path):
            raise CheckpointError(
                f"{what} {path} is a symbolic link; expected a regular file written by jno (links are "
                "not followed when reading checkpoints). Replace it with the file itself."
            ) from None
        raise CheckpointError(f"{what} {path} cannot be opened ({exc}).") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CheckpointError(
            f"{what} {path} is not a regular file (mode {stat.filemode(st.st_mode)}); expected a file "
            "written by jno. Restore another step."
        )
    return fd


def _read_exactly(fd: int, n: int, path: Path) -> bytes:
    parts, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 24))
        if not b:
            raise CheckpointError(f"checkpoint file {path} shrank while being read ({got} of {n} bytes).")
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _tensor_table(header: dict[str, Any]) -> tuple[dict[str, tuple[np.dtype, list[int], int, int]], int]:
    """``({name: (dtype, shape, start, stop)}, data bytes)`` of a parsed header, every entry
    checked (types, known dtype, offsets matching the shape, contiguous and in order), so no
    read depends on an unchecked value. Raises ``ValueError`` describing the first problem."""
    table: dict[str, tuple[np.dtype, list[int], int, int]] = {}
    spans = []
    for name, t in header.items():
        if not isinstance(t, dict) or set(t) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"tensor {name!r}: entry {t!r} is not {{dtype, shape, data_offsets}}")
        code, shape, offs = t["dtype"], t["shape"], t["data_offsets"]
        if code not in _NAMES:
            raise ValueError(f"tensor {name!r}: unknown dtype {code!r}")
        ok = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0  # noqa: E731
        if not isinstance(shape, list) or not all(ok(d) for d in shape):
            raise ValueError(f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
        if not isinstance(offs, list) or len(offs) != 2 or not all(ok(o) for o in offs) or offs[0] > offs[1]:
            raise ValueError(f"tensor {name!r}: data_offsets {offs!r} are not [start, stop]")
        dname = _NAMES[code]
        dt = np.dtype(getattr(jnp, dname)) if dname in _EXTENDED else np.dtype(dname)
        if int(np.prod(shape, dtype=object)) * dt.itemsize != offs[1] - offs[0]:
            raise ValueError(f"tensor {name!r}: {offs[1] - offs[0]} bytes for shape {shape} of {dname}")
        table[name] = (dt, shape, offs[0], offs[1])
        spans.append((offs[0], offs[1]))
    pos = 0
    for b0, b1 in sorted(spans):
        if b0 != pos:
            raise ValueError(f"tensor data is not contiguous (a gap or overlap at byte {pos})")
        pos = b1
    return table, pos


def read_state_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({name: array}, metadata)`` from a file written by :func:`write_state_file`.

    Validated before the data is read: a regular file (no link followed, FIFOs and devices
    refused), the header length against the file size (and :data:`MAX_HEADER_BYTES`), the
    header's checksum, every tensor entry and the data size; then the data's CRC-32."""

    def corrupt(why: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint file {path} is corrupt or truncated ({why}). Restore another step "
            "(cb.all_steps lists them)."
        )

    path = Path(path)
    fd = _open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size < 8:
            raise corrupt(f"{size} bytes, shorter than the 8-byte header length")
        prefix = _read_exactly(fd, 8, path)
        (n,) = struct.unpack("<Q", prefix)
        if n > size - 8 or n > MAX_HEADER_BYTES:
            raise corrupt(f"header of {n} bytes announced, {size - 8} bytes in the file")
        head = _read_exactly(fd, n, path)
        try:
            header = json.loads(head.decode("utf-8"))
            if not isinstance(header, dict):
                raise ValueError(f"the header is a {type(header).__name__}, expected an object")
            meta = header.pop("__metadata__")
            if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
                raise ValueError("__metadata__ is not a map of strings")
            table, need = _tensor_table(header)
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise corrupt(f"unreadable header: {exc}") from None
        if "header_crc32" in meta:
            found = _HEADER_CRC_RE.findall(head)
            if len(found) != 1 or found[0].decode() != meta["header_crc32"]:
                raise corrupt("the header's checksum entry is damaged")
            zeroed = _HEADER_CRC_RE.sub(b'"header_crc32":"00000000"', head, count=1)
            if f"{zlib.crc32(prefix + zeroed):08x}" != meta["header_crc32"]:
                raise corrupt("CRC-32 of the header does not match its header_crc32")
        elif meta.get("version") != "1":
            raise corrupt("the header has no header_crc32 checksum (required since format version 2)")
        if "crc32" not in meta:
            raise corrupt("the header has no crc32 checksum of the data")
        if size - 8 - n != need:
            raise corrupt(f"{size - 8 - n} data bytes, expected {need}")
        data = _read_exactly(fd, need, path)
    finally:
        os.close(fd)
    if str(zlib.crc32(data)) != meta["crc32"]:
        raise corrupt("CRC-32 of the data does not match the header")
    arrays = {name: np.frombuffer(data[b0:b1], dtype=dt).reshape(shape).copy()
              for name, (dt, shape, b0, b1) in table.items()}
    return arrays, meta


def dumps(obj: Any) -> str:
    """The JSON text of a checkpoint file."""
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=True)


def _create(path: Path) -> int:
    """A new file for writing: never an existing one, never through a symbolic link."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                   | getattr(os, "O_CLOEXEC", 0), 0o644)


def _write_json(path: Path, obj: Any, fsync: bool) -> None:
    text = obj if isinstance(obj, str) else dumps(obj)
    with open(_create(path), "w", encoding="utf-8") as f:
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


def begin_checkpoint_dir(directory: Path, epoch: int, arrays: Mapping[str, np.ndarray], structure: dict[str, Any] | str,
                         plugin_state: dict[str, Any], fsync: bool = True) -> Path:
    """First half of a save: create ``<directory>/.tmp-<epoch>-<pid>`` and write
    ``state.safetensors`` into it; returns the temporary directory (finish it with
    :func:`finish_checkpoint_dir`). On failure nothing is left behind."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp-{int(epoch)}-{os.getpid()}"
    if tmp.exists() or tmp.is_symlink():
        discard(tmp)
    tmp.mkdir()
    try:
        struct_text = structure if isinstance(structure, str) else dumps(structure)
        with open(_create(tmp / STATE_FILE), "wb") as f:
            write_state_file(f, arrays, {
                "format": FORMAT, "version": str(VERSION), "structure": struct_text, "plugins": dumps(plugin_state)})
            f.flush()
            if fsync:
                os.fsync(f.fileno())
    except BaseException:
        discard(tmp)
        raise
    return tmp


def finish_checkpoint_dir(directory: Path, tmp: Path, epoch: int, metadata: dict[str, Any], fsync: bool = True) -> Path:
    """Second half of a save: write ``metadata.json`` into ``tmp`` and rename it to
    ``<directory>/<epoch>`` (atomic; an existing ``<epoch>`` is replaced). On failure the
    temporary directory is removed and the error raised."""
    final = directory / str(int(epoch))
    try:
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
    except BaseException:
        discard(tmp)
        raise
    if fsync:
        _fsync_dir(directory)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_checkpoint_dir(directory: Path, epoch: int) -> None:
    """Prune ``<directory>/<epoch>``: renamed to ``.old-<epoch>-<pid>`` first (atomic), then
    deleted, so a process killed while deleting never leaves a listed checkpoint with files
    missing (the ``.old-*`` rest is removed by the next writer)."""
    final = directory / str(int(epoch))
    old = directory / f".old-{int(epoch)}-{os.getpid()}"
    try:
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    except OSError:
        return
    shutil.rmtree(old, ignore_errors=True)


def discard(tmp: Path) -> None:
    """Remove a temporary checkpoint directory (or a file or link of that name), ignoring
    errors: what a failed save leaves must not take more space on a full disk."""
    try:
        if tmp.is_symlink() or tmp.is_file():
            tmp.unlink()
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass


def write_checkpoint_dir(directory: Path, epoch: int, arrays: Mapping[str, np.ndarray], structure: dict[str, Any] | str,
                         plugin_state: dict[str, Any], metadata: dict[str, Any], fsync: bool = True) -> Path:
    """Write one checkpoint atomically; returns ``<directory>/<epoch>``
    (:func:`begin_checkpoint_dir` then :func:`finish_checkpoint_dir`).

    :param arrays: ``{leaf path: host array}`` in the order of ``structure["leaves"]``.
    :param structure: the structure record, or its JSON text (the same for every save of a
        solver, so callers serialise it once)."""
    tmp = begin_checkpoint_dir(directory, epoch, arrays, structure, plugin_state, fsync)
    return finish_checkpoint_dir(directory, tmp, epoch, metadata, fsync)


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
#: the largest ``metadata.json`` read
MAX_METADATA_BYTES = 16 * 2**20


def _read_json(path: Path) -> dict[str, Any]:
    fd = _open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size > MAX_METADATA_BYTES:
            raise CheckpointError(
                f"checkpoint file {path} has {size} bytes, more than the {MAX_METADATA_BYTES} a metadata "
                "file can have; it is not one jno wrote. Restore another step."
            )
        raw = _read_exactly(fd, size, path)
    finally:
        os.close(fd)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
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
    try:
        version = int(meta.get("version", "-1"))
    except ValueError:
        version = -1
    if meta.get("format") != FORMAT or not 1 <= version <= VERSION:
        raise CheckpointError(
            f"{state_file} is not a {FORMAT} file of version 1..{VERSION} (format {meta.get('format')!r}, "
            f"version {meta.get('version')!r})."
        )
    try:
        structure = json.loads(meta["structure"])
        plugin_state = json.loads(meta.get("plugins", "{}"))
        leaves = structure["leaves"]
        specs = [(d["path"], [int(x) for x in d["shape"]], str(d["stored"])) for d in leaves]
        if not isinstance(plugin_state, dict):
            raise TypeError(f"the plugins record is a {type(plugin_state).__name__}")
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        raise CheckpointError(f"checkpoint file {state_file} has an unreadable structure record ({exc!r}).") from None
    arrays: dict[str, np.ndarray] = {}
    for path_, shape, stored in specs:
        a = tensors.get(path_) if isinstance(path_, str) else None
        if a is None or list(a.shape) != shape or str(a.dtype) != stored:
            raise CheckpointError(
                f"checkpoint file {state_file} is corrupt: leaf {path_} is "
                f"{'missing' if a is None else f'{list(a.shape)} {a.dtype}'}, expected {shape} {stored}."
            )
        arrays[path_] = a
    try:
        step = int(metadata.get("epoch", path.name if path.name.isdigit() else -1))
    except (TypeError, ValueError):
        raise CheckpointError(f"checkpoint file {path / METADATA_FILE} has epoch {metadata.get('epoch')!r}, "
                              "expected an integer.") from None
    return CheckpointData(step, path, metadata, arrays, structure, plugin_state)
