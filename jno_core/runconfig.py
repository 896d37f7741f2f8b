"""The run config a script reads its hyperparameters from: ``dire.config``."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["RunConfig"]


class RunConfig(dict):
    """A ``dict`` of the run's hyperparameters with attribute access, as W&B users write
    ``wandb.config.lr``: ``cfg["lr"]`` and ``cfg.lr`` are the same value; nested mappings are
    :class:`RunConfig` too (``cfg.optimizer.lr``).

    ``jno.setup(__file__, config={"lr": 1e-3})`` returns the run directory with ``.config``:
    the defaults given, overridden by a sweep trial's values when an agent runs the script.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        for k, v in dict(data or {}).items():
            self[k] = RunConfig(v) if isinstance(v, Mapping) and not isinstance(v, RunConfig) else v

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            if key.startswith("__"):
                raise AttributeError(key) from None
            raise AttributeError(
                f"the run config has no entry {key!r}; its entries are {sorted(self)}. Give a default "
                f"in jno.setup(__file__, config={{{key!r}: ...}}) or add it to the sweep's parameters."
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def to_dict(self) -> dict[str, Any]:
        """A plain nested ``dict`` copy."""
        return {k: v.to_dict() if isinstance(v, RunConfig) else v for k, v in self.items()}
