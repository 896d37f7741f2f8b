"""The plugin authors' conformance suite (jno_core.testing) run over hessian_spectrum."""

from jno_core.testing import TrackerConformance
from jno_core import plugins


class TestHessianSpectrumConformance(TrackerConformance):
    entry_point = "hessian"
    distribution = "jno-plugin-hessian"
    tracker_name = "hessian_spectrum"
    result_keys = {"eigvals": (3,), "sharpness": ()}
    metric_keys = (
        "explainability/hessian/eigval_0",
        "explainability/hessian/eigval_2",
        "explainability/hessian/sharpness",
        "explainability/hessian/n_iter",
        "explainability/time_ms/hessian_spectrum",
    )

    def make_tracker(self, problem, interval):
        factory = plugins.lookup("trackers", self.tracker_name).factory
        return factory(k=3, n_iter=8, interval=interval)
