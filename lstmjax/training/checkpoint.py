"""Checkpoints: the train state after each epoch, through Orbax.

Each checkpoint holds the state's arrays (``step``, ``params``, ``opt_state``, the RNG key's
data), the best parameters so far (early stopping) and a JSON ``meta`` dict. Nothing here
executes code from the files it reads (no pickle). Orbax writes each checkpoint into a temporary
folder and renames it into place when complete, so a crash while saving leaves the last good
checkpoint intact.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "Checkpointer"]


class CheckpointError(ValueError):
    """A checkpoint or run directory is missing, damaged, or does not match the run."""


class Checkpointer:
    """Save and restore the train state after each epoch (Orbax ``CheckpointManager``).

    Each checkpoint holds the state's arrays (``step``, ``params``, ``opt_state``, the RNG key's
    data), the best parameters so far (early stopping), and a JSON ``meta`` dict (epoch,
    history, best score).

    Args:
      directory: the run directory (checkpoints go to ``directory/checkpoints``).
      max_to_keep: how many recent checkpoints to keep.

    Example:
      >>> import tempfile, jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax import create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(20, 2, embed_dim=4, hidden_size=4),
      ...                            jax.random.key(0), make_optimizer())
      >>> ckpt = Checkpointer(tempfile.mkdtemp())
      >>> ckpt.save(1, state, {"epoch": 1})
      >>> restored, meta, best = ckpt.restore(state)
      >>> meta, ckpt.latest_epoch()
      ({'epoch': 1}, 1)
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        self.directory = pathlib.Path(directory).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                               enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    @staticmethod
    def _arrays(state, best_params) -> dict[str, Any]:
        return {
            "step": state.step,
            "params": state.params,
            "opt_state": state.opt_state,
            "rng": jax.random.key_data(state.rng),
            "best_params": state.params if best_params is None else best_params,
        }

    def save(self, epoch: int, state, meta: dict[str, Any], best_params=None, *, overwrite: bool = False) -> None:
        """Save after ``epoch`` (an int); ``meta`` must be JSON-serialisable.

        ``overwrite`` replaces an existing checkpoint of the same epoch (e.g. with pruned weights).
        """
        if overwrite and epoch in self._manager.all_steps():
            self._manager.delete(epoch)
        self._manager.save(epoch, args=ocp.args.Composite(
            state=ocp.args.StandardSave(self._arrays(state, best_params)),
            meta=ocp.args.JsonSave(meta),
        ))
        self._manager.wait_until_finished()

    def latest_epoch(self) -> int | None:
        """The newest complete checkpoint's epoch, or ``None``."""
        self._manager.reload()
        return self._manager.latest_step()

    def restore(self, state, epoch: int | None = None):
        """Restore into the structure of ``state`` (a freshly created :class:`~lstmjax.training.TrainState`).

        Returns:
          ``(state, meta, best_params)``.

        Raises:
          CheckpointError: no checkpoint, or one whose arrays do not fit ``state``'s shapes.
        """
        epoch = self.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise CheckpointError(f"{self.directory}: no checkpoint to restore")
        template = self._arrays(state, None)
        try:
            restored = self._manager.restore(epoch, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()))
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise CheckpointError(f"{self.directory}/{epoch}: cannot restore into this model: {e}") from e
        arrays = restored["state"]
        mismatched = [
            jax.tree_util.keystr(path)
            for path, a, b in _zip_with_path(template["params"], arrays["params"])
            if np.shape(a) != np.shape(b)
        ]
        if mismatched:
            raise CheckpointError(f"{self.directory}/{epoch}: parameter shapes differ at {', '.join(mismatched)}")
        state = state.replace(
            step=arrays["step"], params=arrays["params"], opt_state=arrays["opt_state"],
            rng=jax.random.wrap_key_data(arrays["rng"], impl=jax.random.key_impl(state.rng)),
        )
        return state, dict(restored["meta"]), arrays["best_params"]


def _zip_with_path(a, b):
    flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
    flat_b = jax.tree.leaves(b)
    return [(path, x, y) for (path, x), y in zip(flat_a, flat_b)]
