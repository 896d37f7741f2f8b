"""Read back what an offline W&B run recorded, without syncing it.

An offline run writes its records to ``<dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb``:
a 7-byte file header (``b":W&B"``, the magic number ``0xBEE1`` little-endian, a version
byte) followed by 32 KiB blocks of length-prefixed chunks (4-byte checksum, 2-byte
little-endian length, 1-byte type: 1 a whole record, 2/3/4 the first/middle/last piece of a
record split across blocks; blocks are zero-padded at the end). Each record is a
``wandb.proto.wandb_internal_pb2.Record`` protobuf. Checksums are not verified; a truncated
tail (a killed process) ends the read.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any, Iterator

import attrs

__all__ = ["OfflineRun", "find_offline_runs", "read_offline_run", "iter_records"]

_HEADER = b":W&B"
_MAGIC = 0xBEE1
_BLOCK = 32768
_CHUNK_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def _iter_payloads(data: bytes) -> Iterator[bytes]:
    if len(data) < 7 or data[:4] != _HEADER or struct.unpack("<H", data[4:6])[0] != _MAGIC:
        raise ValueError(
            f"not a W&B run file: expected the header b':W&B' + 0xBEE1, received {data[:7]!r}. "
            "Pass the run-<id>.wandb file of an offline run."
        )
    pos, pieces = 7, b""
    while pos + _CHUNK_HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _CHUNK_HEADER])
        start = pos + _CHUNK_HEADER
        if start + length > len(data):
            return  # truncated tail
        chunk = data[start : start + length]
        pos = start + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pieces = chunk
        elif kind == _MIDDLE:
            pieces += chunk
        elif kind == _LAST:
            yield pieces + chunk
            pieces = b""
        elif kind == 0 and length == 0:
            pos += left - _CHUNK_HEADER  # zero padding to the end of the block
        else:
            return


def iter_records(path: str | Path) -> Iterator[Any]:
    """Every ``wandb_internal_pb2.Record`` of a ``.wandb`` file, in write order."""
    from wandb.proto import wandb_internal_pb2

    for payload in _iter_payloads(Path(path).read_bytes()):
        rec = wandb_internal_pb2.Record()
        rec.ParseFromString(payload)
        yield rec


def _set(target: dict[str, Any], item: Any) -> None:
    path = [item.key] if item.key else list(item.nested_key)
    value = json.loads(item.value_json)
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


@attrs.define
class OfflineRun:
    """The contents of one offline run.

    :ivar path: the ``.wandb`` file.
    :ivar run: ``id``, ``project``, ``entity``, ``name`` (display name), ``config``.
    :ivar history: one dict per logged step (``_step`` plus the logged keys; media and
        histograms are dicts with a ``_type``), in order.
    :ivar summary: the final summary (last value of every key).
    :ivar artifacts: one dict per logged artifact: ``name``, ``type``, ``metadata``,
        ``aliases``, ``files`` (``{path: size}``).
    """

    path: Path
    run: dict[str, Any]
    history: list[dict[str, Any]]
    summary: dict[str, Any]
    artifacts: list[dict[str, Any]]

    @property
    def files_dir(self) -> Path:
        """The run's ``files`` folder (media such as images live under ``media/``)."""
        return self.path.parent / "files"

    def series(self, key: str) -> tuple[list[int], list[Any]]:
        """``(steps, values)`` of ``key`` over the history rows that contain it."""
        rows = [r for r in self.history if key in r]
        return [int(r["_step"]) for r in rows], [r[key] for r in rows]


def read_offline_run(path: str | Path, *, wait: float = 0.0) -> OfflineRun:
    """Read an offline run: ``path`` is its ``.wandb`` file, its ``offline-run-*`` folder, or a
    directory holding ``wandb/offline-run-*`` (the latest one is read).

    :param wait: seconds to wait for the run to be complete on disk. ``run.finish()`` returns
        before W&B's background service has written its buffered records, so a reader in the
        same process should wait (``wait=10``) for the final ``exit`` record; ``0`` reads
        what is there.
    """
    p = Path(path)
    if p.is_dir():
        if not list(p.glob("run-*.wandb")):
            runs = find_offline_runs(p)
            if not runs:
                raise FileNotFoundError(
                    f"no offline W&B run under {p}; expected a wandb/offline-run-* folder (was "
                    "the run logged with WANDB_MODE=offline?)."
                )
            p = runs[-1]
        p = sorted(p.glob("run-*.wandb"))[0]
    deadline = time.monotonic() + wait
    records = list(iter_records(p))
    while not any(r.WhichOneof("record_type") == "exit" for r in records) and time.monotonic() < deadline:
        time.sleep(0.05)
        records = list(iter_records(p))
    run: dict[str, Any] = {"config": {}}
    history: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    artifacts: list[dict[str, Any]] = []
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.update(id=r.run_id, project=r.project, entity=r.entity, name=r.display_name)
            for item in r.config.update:
                _set(run["config"], item)
        elif kind == "config":
            for item in rec.config.update:
                _set(run["config"], item)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in rec.history.item:
                _set(row, item)
            if rec.history.HasField("step") and "_step" not in row:
                row["_step"] = rec.history.step.num
            history.append(row)
        elif kind == "summary":
            for item in rec.summary.update:
                _set(summary, item)
            for item in rec.summary.remove:
                summary.pop(item.key or (item.nested_key[0] if item.nested_key else ""), None)
        elif kind == "artifact":
            a = rec.artifact
            artifacts.append({
                "name": a.name,
                "type": a.type,
                "metadata": json.loads(a.metadata) if a.metadata else {},
                "aliases": list(a.aliases),
                "files": {c.path: c.size for c in a.manifest.contents},
            })
    return OfflineRun(p, run, history, summary, artifacts)


def find_offline_runs(directory: str | Path) -> list[Path]:
    """The ``offline-run-*`` folders under ``directory`` (or ``directory/wandb``), oldest
    first."""
    d = Path(directory)
    found = sorted(d.glob("offline-run-*")) + sorted(d.glob("wandb/offline-run-*"))
    return sorted(found, key=lambda f: f.name)
