"""Two processes on loopback (jax.distributed with gloo CPU collectives): the same losses as
one process on one device, and only process 0 opens sinks."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_device(tmp_path):
    here = Path(__file__).parent
    port = str(_free_port())
    env = dict(os.environ, PYTHONPATH=f"{here}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               JNO_NO_PROGRESS="1")
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen([sys.executable, str(here / "multihost_run.py"), str(i), port, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    sys.path.insert(0, str(here))
    from sharded_run import build

    crux, _ = build()
    ref = crux.solve(10, devices=1).total_loss
    for o in outs:
        assert o["n_devices"] == 2
        np.testing.assert_allclose(o["loss"], ref, rtol=2e-5)
    assert outs[1]["sinks"] == []  # process 1 asked for csv but only process 0 runs sinks
