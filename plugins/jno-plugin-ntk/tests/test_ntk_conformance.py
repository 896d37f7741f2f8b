"""The plugin authors' conformance suite (jno_core.testing) run over ntk_spectrum."""

from jno_core.testing import TrackerConformance
from jno_core import plugins


class TestNtkSpectrumConformance(TrackerConformance):
    entry_point = "ntk"
    distribution = "jno-plugin-ntk"
    tracker_name = "ntk_spectrum"
    result_keys = {
        "eigvals_topk": (3,),
        "lambda_min": (),
        "lambda_max": (),
        "condition_number": (),
        "trace": (),
        "all_eigvals": lambda d: (min(12, d.n_interior),),
    }
    metric_keys = (
        "explainability/ntk/eigval_0",
        "explainability/ntk/eigval_2",
        "explainability/ntk/lambda_max",
        "explainability/ntk/lambda_min",
        "explainability/ntk/condition_number",
        "explainability/ntk/spectrum_hist",
        "explainability/time_ms/ntk_spectrum",
    )

    def make_tracker(self, problem, interval):
        factory = plugins.lookup("trackers", self.tracker_name).factory
        return factory(problem.u.grad(problem.net), n_points=12, top_k=3, interval=interval)
