"""The conformance kit (jno_core.testing.ResamplerConformance) run on random, RAD and R3."""

import pytest

from jno_core.testing import ResamplerConformance, fresh_plugins  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("fresh_plugins")


class TestRandomConformance(ResamplerConformance):
    entry_point = "resampling"
    distribution = "jno-plugin-resampling"
    resampler_name = "random"


class TestRADConformance(ResamplerConformance):
    entry_point = "resampling"
    distribution = "jno-plugin-resampling"
    resampler_name = "rad"


class TestR3Conformance(ResamplerConformance):
    entry_point = "resampling"
    distribution = "jno-plugin-resampling"
    resampler_name = "r3"
