"""The plugin-registration part of jno's conformance kit, for jno.callbacks.early_stopping."""

from jno_core.testing import _PluginConformance
from jno_plugin_early_stopping import EarlyStopping


class TestEarlyStoppingConformance(_PluginConformance):
    entry_point = "early_stopping"
    distribution = "jno-plugin-early-stopping"
    kind = "callbacks"

    def registered_name(self) -> str:
        return "early_stopping"

    def _plugin_instance(self) -> EarlyStopping:
        return EarlyStopping(patience=10)
