"""The plugin-registration part of jno's conformance kit, for both balancer names. (The
device-state checks of WeightingConformance apply to WeightingScheme subclasses; these are
host-fed HostWeights, checked in test_balancing_weights.py.)"""

from jno_core.testing import _PluginConformance


class TestGradientNormBalancedConformance(_PluginConformance):
    entry_point = "balancing"
    distribution = "jno-plugin-balancing"
    kind = "weightings"

    def registered_name(self) -> str:
        return "gradient_norm_balanced"


class TestNtkBalancedConformance(TestGradientNormBalancedConformance):
    def registered_name(self) -> str:
        return "ntk_balanced"
