"""How an agent runs a trial: a child process (or a function in this process), the W&B
command macros, and reading the metric file the trial appends to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ._space import flatten
from ._trial import PRUNE_FILE, activate

__all__ = ["build_command", "MetricReader", "ProcessRunner", "FunctionRunner", "pid_alive", "tail"]

_TAIL_CHARS = 3000


def _fmt_arg(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def build_command(template: Sequence[str], values: dict[str, Any], *, program: str | None = None,
                  args_file: Path | None = None) -> list[str]:
    """Expand W&B's command macros in ``template``: ``${env}`` (dropped: the interpreter is
    named directly), ``${interpreter}`` (this Python), ``${program}``, ``${args}``
    (``--name=value``), ``${args_no_hyphens}``, ``${args_no_boolean_flags}``, ``${args_json}``,
    ``${args_json_file}`` (the trial's values in a JSON file). Nested values are dotted
    (``--optimizer.lr=0.01``)."""
    flat = flatten(values)
    out: list[str] = []
    for tok in template:
        if tok == "${env}":
            continue
        if tok == "${interpreter}":
            out.append(sys.executable)
        elif tok == "${program}":
            if not program:
                raise ConfigError("the sweep's command uses ${program} but the sweep file has no `program` key.")
            out.append(program)
        elif tok == "${args}":
            out.extend(f"--{k}={_fmt_arg(v)}" for k, v in flat.items())
        elif tok == "${args_no_hyphens}":
            out.extend(f"{k}={_fmt_arg(v)}" for k, v in flat.items())
        elif tok == "${args_no_boolean_flags}":
            out.extend(f"--{k}" if v is True else f"--{k}={_fmt_arg(v)}" for k, v in flat.items() if v is not False)
        elif tok == "${args_json}":
            out.append(json.dumps(values))
        elif tok == "${args_json_file}":
            if args_file is None:
                raise ConfigError("${args_json_file} needs a file to write to.")
            args_file.write_text(json.dumps(values))
            out.append(str(args_file))
        else:
            out.append(tok.replace("${program}", program or "${program}"))
    return out


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return True
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def tail(path: Path, chars: int = _TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - chars))
            return fh.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


class MetricReader:
    """Reads the complete lines a trial appended to ``sweep-metric.jsonl`` since last time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0
        self.keys: list[str] | None = None

    def read(self) -> list[tuple[int, float]]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.pos)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.pos += end
        out = []
        for line in data[:end].splitlines():
            rec = json.loads(line)
            if "keys" in rec:
                self.keys = list(rec["keys"])
            else:
                out.append((int(rec["step"]), float(rec["value"])))
        return out


class _Runner:
    def done(self) -> bool: ...  # pragma: no cover
    def interrupt(self) -> None: ...  # pragma: no cover
    def kill(self) -> None: ...  # pragma: no cover
    def result(self) -> tuple[int, str | None]: ...  # pragma: no cover


class ProcessRunner(_Runner):
    """The trial as a child process, output to ``output.log``."""

    def __init__(self, cmd: list[str], env: dict[str, str], output: Path) -> None:
        self._out = open(output, "ab")
        try:
            self.proc = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        except OSError as exc:
            self._out.close()
            self.proc = None
            self._error = f"could not start {cmd!r}: {type(exc).__name__}: {exc}"
        else:
            self._error = None

    def done(self) -> bool:
        return self.proc is None or self.proc.poll() is not None

    def interrupt(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def result(self) -> tuple[int, str | None]:
        if self.proc is None:
            return 127, self._error
        self._out.close()
        return int(self.proc.returncode), None


class FunctionRunner(_Runner):
    """The trial as a function in this process (one at a time: jno has one current run)."""

    def __init__(self, fn: Callable[[], Any], spec: Any, run_dir: Path) -> None:
        self.error: str | None = None
        self.run_dir = run_dir

        def target() -> None:
            from ..run import finish

            activate(spec)
            try:
                fn()
            except BaseException:  # noqa: BLE001 - the trial's failure, kept as its error
                self.error = traceback.format_exc()
            finally:
                activate(None)
                try:
                    finish()
                except BaseException:  # noqa: BLE001
                    self.error = (self.error or "") + traceback.format_exc()

        self.thread = threading.Thread(target=target, name=f"jno-sweep-{spec.name}", daemon=True)
        self.thread.start()

    def done(self) -> bool:
        return not self.thread.is_alive()

    def interrupt(self) -> None:
        (self.run_dir / PRUNE_FILE).write_text("interrupted (the agent was stopped)")

    def kill(self) -> None:
        pass  # a thread cannot be killed; its solve stops at the next chunk

    def result(self) -> tuple[int, str | None]:
        return (1, self.error[-_TAIL_CHARS:]) if self.error else (0, None)
