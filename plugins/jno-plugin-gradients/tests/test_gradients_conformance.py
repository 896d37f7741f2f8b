"""The plugin authors' conformance suite (jno_core.testing) run over the three trackers."""

from jno_core.testing import TrackerConformance


class _Gradients(TrackerConformance):
    entry_point = "gradients"
    distribution = "jno-plugin-gradients"


class TestGradientNormsConformance(_Gradients):
    tracker_name = "gradient_norms"
    result_keys = {"norms": lambda d: (d.N,)}
    metric_keys = ("explainability/gradient_norm/constraint_0", "explainability/gradient_norm/constraint_1")


class TestCosSimilarityConformance(_Gradients):
    tracker_name = "cos_similarity"
    result_keys = {"cos_sim_matrix": lambda d: (d.N, d.N)}
    metric_keys = ("explainability/cos_sim/0_1", "explainability/cos_sim_matrix")


class TestGradientAlignmentConformance(_Gradients):
    tracker_name = "gradient_alignment"
    result_keys = {"alignment": ()}
    metric_keys = ("explainability/gradient_alignment",)
