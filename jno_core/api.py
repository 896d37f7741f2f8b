"""The public plugin API: every name a plugin (first-party or third-party) may use.

Plugins import from here (``from jno_core.api import Tracker, hookimpl, ...``) and from
nothing else in the engine; ``tests/test_public_api.py`` fails when a file under
``plugins/*/src`` imports another engine module, a private name, or touches ``crux._...``.
Each name is documented in ``docs/api.md``. The older import paths (``jno_core.tracker``,
``jno_core.weighting``, ``jno.hookimpl``, ``jno_core.testing``) keep working.

Groups:

* the contract: :data:`hookimpl`, :data:`hookspec`, :class:`TrainState`, :class:`SolveContext`
  (and :class:`ParamSelector`), the solver's public ``state`` / ``load_state`` / ``params`` /
  ``points`` / ``current_inputs`` / ``weights`` / ``loss_fn`` / ``solving``;
* plugin kinds: :class:`Tracker`, :class:`WeightingScheme` / :class:`WeightPlaceholder`,
  :class:`HostWeights` / :class:`HostWeightPlaceholder`;
* background compilation for host-side (escape-hatch) trackers: :mod:`compile_pool`
  (``compile_async``, ``drain``, ``Pending``; ``settle`` and ``run_async`` kept for earlier
  trackers); trackers with a device function (``Tracker.fire_fn``) compile nothing themselves;
* expressions, for trackers that read them: :mod:`expr` (node types, ``walk``),
  :func:`trainable_key`, :func:`node_key`, :class:`Env` + :func:`evaluate`,
  :func:`point_set`, :class:`TrainableParameter`, :func:`selected_leaves`;
* domains, for resamplers: :class:`Domain`, :func:`points_on`, :func:`device_sampler` (uniform
  points of a domain drawn on the device) and ``SolveContext.set_points`` /
  ``Core.set_points`` (replace a point set between chunks without recompiling);
* metrics and their rendering, for sinks: :class:`Scalar`, :class:`Heatmap`,
  :class:`Histogram`, :class:`Array`, :func:`as_metric`; :mod:`binning` helpers,
  :func:`heatmap_to_rgb` / :func:`encode_png`; the CSV array-file format (:mod:`arrayfile`)
  and run readers (:func:`read_metrics`, :func:`read_checkpoints`);
* the run and the plugin manager: :func:`current_run`, :mod:`run`, :func:`get_plugin_manager`,
  :func:`plugin_name`, :func:`replicate`; :func:`deferred_interrupts` (a critical section that
  Ctrl-C/SIGTERM wait for);
* errors: :class:`JnoPluginError`, :class:`ConfigError`, :class:`CheckpointError`, ...
"""

from __future__ import annotations

from . import compile_pool, expr, run
from .arrayfile import (
    SUFFIX,
    TMP_PREFIX,
    ArrayRecord,
    encode_array_file,
    file_name,
    parse_name,
    read_array_file,
)
from .binning import SMALL, finite_values, histogram, histogram_lists, histogram_of_list
from .colormap import encode_png, heatmap_to_rgb
from .compile import Env, evaluate, node_key, residual_of, trainable_key
from .context import ParamSelector, SolveContext, constraint_gradients
from .domain import Domain, device_sampler, point_set, points_on
from .errors import *  # noqa: F401,F403 - every error type
from .errors import __all__ as _errors
from .hookspecs import hookimpl, hookspec
from .interrupts import deferred_interrupts
from .masks import selected_leaves
from .metrics import Array, Heatmap, Histogram, MetricValue, Scalar, as_metric, as_metrics
from .parameter import TrainableParameter
from .plugins import get_plugin_manager, plugin_name, strict_mode
from .expr import Placeholder, as_expr
from .replay import (
    ARRAYS_DIR,
    CHECKPOINTS_FILE,
    CHECKPOINTS_HEADER,
    METRICS_FILE,
    METRICS_HEADER,
    array_dirname,
    read_checkpoints,
    read_metrics,
)
from .run import current_run
from .sharding import replicate
from .state import TrainState
from .tracker import Tracker
from .weighting import HostWeightPlaceholder, HostWeights, WeightingScheme, WeightPlaceholder

__all__ = [
    "hookimpl", "hookspec", "TrainState", "SolveContext", "ParamSelector", "constraint_gradients",
    "Tracker", "WeightingScheme", "WeightPlaceholder", "HostWeights", "HostWeightPlaceholder",
    "compile_pool", "expr", "trainable_key", "node_key", "residual_of", "Env", "evaluate", "point_set",
    "TrainableParameter", "selected_leaves",
    "Scalar", "Heatmap", "Histogram", "Array", "MetricValue", "as_metric", "as_metrics",
    "SMALL", "finite_values", "histogram", "histogram_lists", "histogram_of_list", "encode_png", "heatmap_to_rgb",
    "SUFFIX", "TMP_PREFIX", "ArrayRecord", "encode_array_file", "file_name", "parse_name", "read_array_file",
    "read_metrics", "read_checkpoints", "METRICS_FILE", "METRICS_HEADER", "CHECKPOINTS_FILE",
    "CHECKPOINTS_HEADER", "ARRAYS_DIR", "array_dirname", "Placeholder", "as_expr", "Domain", "points_on", "device_sampler",
    "run", "current_run", "get_plugin_manager", "plugin_name", "strict_mode", "replicate",
    "deferred_interrupts",
    *_errors,
]
