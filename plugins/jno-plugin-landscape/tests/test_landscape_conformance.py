"""The plugin authors' conformance suite (jno_core.testing) run over loss_landscape."""

from jno_core.testing import TrackerConformance
from jno_core import plugins


class TestLossLandscapeConformance(TrackerConformance):
    entry_point = "landscape"
    distribution = "jno-plugin-landscape"
    tracker_name = "loss_landscape"
    result_keys = {"landscapes": (5, 5)}
    metric_keys = ("explainability/loss_landscape", "explainability/time_ms/loss_landscape")

    def make_tracker(self, problem, interval):
        factory = plugins.lookup("trackers", self.tracker_name).factory
        return factory(interval=interval, n_grid=5, alpha_range=0.5)
