"""jno_core.lr: the learning rate read out of an optax optimizer for the lr/<network> metric."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

from jno_core.lr import learning_rate_fn


def _compiles(fn):
    """The number of XLA backend compilations while ``fn()`` runs."""
    n = [0]

    def listener(event, duration, **kw):
        if "backend_compile" in event:
            n[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        fn()
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    return n[0]


def test_schedule_values_for_any_length_and_one_compile_per_length_bucket():
    sched = optax.exponential_decay(1e-3, 1_000, 0.5, end_value=1e-5)
    f = learning_rate_fn(optax.adam(sched))
    for n in (1, 5, 40, 41, 64, 100):
        counts = np.arange(n) * 37
        want = np.array([float(sched(int(c))) for c in counts])
        np.testing.assert_allclose(f(counts), want, rtol=1e-6)
    # lengths 65..128 share one padded length: after one call, no more compiles
    f(np.arange(70))
    assert _compiles(lambda: [f(np.arange(n)) for n in (65, 90, 128)]) == 0


def test_schedule_that_cannot_be_traced_is_called_eagerly():
    f = learning_rate_fn(optax.sgd(lambda c: 0.1 * np.where(np.asarray(c) < 100, 1.0, 0.5)))
    np.testing.assert_array_equal(f(np.array([0, 50, 150])), [0.1, 0.1, 0.05])


def test_constant_learning_rate_and_unreadable_optimizer():
    """A constant rate (optax.adam(1e-2), as in the spec's scripts) is read from the final
    scale(-lr) of the alias, also behind a chain; an optimizer that keeps no rate anywhere
    gives None (the metric is left out)."""
    for tx, lr in ((optax.adam(3e-4), 3e-4), (optax.adam(learning_rate=1e-2), 1e-2), (optax.sgd(0.1), 0.1),
                   (optax.chain(optax.clip(1.0), optax.adam(2e-3)), 2e-3)):
        np.testing.assert_allclose(learning_rate_fn(tx)(np.arange(4)), np.full(4, lr), rtol=1e-7)

    def update(updates, state, params=None):
        return updates, state

    assert learning_rate_fn(optax.GradientTransformation(lambda p: optax.EmptyState(), update)) is None


def test_constant_learning_rate_is_logged_per_network():
    import jno
    from jno_core.testing import RecordingSink

    d = jno.domain.line(mesh_size=0.1)
    x, _ = d.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(in_features=1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-2))
    u = net(x)
    sink = RecordingSink()
    crux = jno.core([(u - x).mse])
    crux.solve(20, callbacks=[sink], log_every=10)
    lr_keys = [k for k in sink.at(10) if k.startswith("lr/")]
    assert len(lr_keys) == 1 and float(sink.at(10)[lr_keys[0]].value) == pytest.approx(1e-2)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
