"""One process of a 2-process jax.distributed run on loopback (driven by test_multihost.py)."""

import json
import sys

import jax

jax.config.update("jax_cpu_collectives_implementation", "gloo")
pid, port, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2, process_id=pid)

import jno  # noqa: E402

from sharded_run import build  # noqa: E402

run = jno.setup(f"{root}/multihost.py", name=f"p{pid}", root=root, sinks=["none"] if pid == 0 else ["csv"])
crux, _ = build()
h = crux.solve(10, devices=2)
print(json.dumps({"pid": pid, "n_devices": len(jax.devices()), "sinks": run.run.sink_names,
                  "loss": h.total_loss.tolist()}))
jno.finish()
