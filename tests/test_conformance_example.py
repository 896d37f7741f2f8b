"""The conformance kit run against the installed example plugin (jno-plugin-example), on a
schedule other than the plugin's own test (interval 4 with 3-epoch chunks, solves of 9 and
8 epochs: fires straddle chunk and solve boundaries)."""

import pytest

pytest.importorskip("jno_plugin_example", reason="pip install -e plugins/jno-plugin-example")

from jno_core.testing import TrackerConformance  # noqa: E402


class TestExampleParameterNorm(TrackerConformance):
    entry_point = "example"
    distribution = "jno-plugin-example"
    tracker_name = "parameter_norm"
    result_keys = {"norms": ()}
    metric_keys = ("example/parameter_norm", "explainability/time_ms/parameter_norm")
    interval, chunk_size, epochs = 4, 3, (9, 8)
