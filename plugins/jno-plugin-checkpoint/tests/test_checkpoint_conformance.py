"""The plugin-registration part of jno's conformance kit, for jno.callbacks.checkpoint."""

from pathlib import Path

from jno_core.testing import _PluginConformance
from jno_plugin_checkpoint import Checkpoint


class TestCheckpointConformance(_PluginConformance):
    entry_point = "checkpoint"
    distribution = "jno-plugin-checkpoint"
    kind = "callbacks"

    def registered_name(self) -> str:
        return "checkpoint"

    def _plugin_instance(self) -> Checkpoint:
        return Checkpoint(directory=Path("/nonexistent/never-written"))
