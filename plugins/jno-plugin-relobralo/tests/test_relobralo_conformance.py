"""The jno conformance kit for weighting schemes, run against relobralo."""

from jno_core.testing import WeightingConformance


class TestRelobraloConformance(WeightingConformance):
    entry_point = "relobralo"
    distribution = "jno-plugin-relobralo"
    weighting_name = "relobralo"
