"""Checkpoints: the train state after a training step, through Orbax.

Each checkpoint holds the state's arrays (``step``, ``params``, ``opt_state``, the RNG key's
data), the best parameters so far (early stopping) and a JSON ``meta`` dict with a checksum of
the arrays. Checkpoints are numbered by training steps done (``checkpoints/402`` holds the state
after 402 steps; the meta says which epoch and batch that was). Nothing here executes code from
the files it reads (no pickle).

What can go wrong, and what happens:

* **A crash or a full disk while saving.** Orbax writes each checkpoint into a temporary folder
  and renames it into place when complete, so the last good checkpoint stays intact; the
  half-written folder is removed the next time the run directory is opened for writing.
* **A damaged checkpoint** (truncated or flipped bytes, a missing or garbled metadata file): a
  checkpoint restores only when Orbax reads it *and* its arrays hash to the checksum saved with
  them. :meth:`Checkpointer.restore` then falls back to the newest intact checkpoint and says
  which ones it skipped and why (:attr:`Checkpointer.skipped`).
* **Symbolic links.** Checkpoints must lie inside the run directory: a step folder that is a
  symbolic link, or a ``checkpoints`` link that leads elsewhere or nowhere, is refused by name.

A :class:`Checkpointer` holds Orbax's manager (and its threads): close it (``with
Checkpointer(...) as ckpt:``) when done.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import pathlib
import shutil
import sys
import traceback
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "CheckpointWarning", "Checkpointer", "saved_steps", "tree_checksum"]

DAMAGED = "checkpoints.damaged"
"""Where :meth:`Checkpointer.set_aside` moves damaged checkpoints (beside ``checkpoints/``)."""


class CheckpointError(ValueError):
    """A checkpoint or run directory is missing, damaged, or does not match the run."""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped and an older, intact one restored; the message names both."""


def _check_link(run_directory: pathlib.Path, folder: pathlib.Path) -> None:
    """``folder`` must not be a link out of ``run_directory``, nor a dangling one."""
    if not folder.is_symlink():
        return
    target = os.readlink(folder)
    if not folder.exists():
        raise CheckpointError(f"{folder} is a symbolic link to {target}, which does not exist")
    if not folder.resolve().is_relative_to(run_directory.resolve()):
        raise CheckpointError(f"{folder} is a symbolic link out of the run directory (to {target}); "
                              "checkpoints must lie inside it")


def saved_steps(directory: str | os.PathLike) -> list[int]:
    """The steps of the checkpoints in ``directory/checkpoints`` (oldest first), without opening Orbax
    or creating anything; ``[]`` when there is no ``checkpoints/`` folder.

    Example:
      >>> import tempfile
      >>> saved_steps(tempfile.mkdtemp())
      []
    """
    run_directory = pathlib.Path(directory).absolute()
    folder = run_directory / "checkpoints"
    _check_link(run_directory, folder)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def _host(x) -> np.ndarray:
    """A host copy of an array's value (a replicated array spread over processes: this process's copy)."""
    if isinstance(x, jax.Array):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        if not x.is_fully_addressable:
            return np.asarray(x.addressable_shards[0].data)
    return np.asarray(x)


def tree_checksum(tree) -> str:
    """A SHA-256 of every array of ``tree`` (shapes, dtypes and bytes, in tree order; integers by value).

    Example:
      >>> import numpy as np
      >>> a = {"w": np.ones(3, np.float32)}
      >>> tree_checksum(a) == tree_checksum({"w": np.ones(3, np.float32)}), tree_checksum(a) == tree_checksum({"w": np.zeros(3, np.float32)})
      (True, False)
    """
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        value = np.ascontiguousarray(_host(leaf))
        if value.dtype.kind in "iub":  # integers by value: a step saved as int32 may come back as int64
            value = value.astype(np.int64)
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _short(error: BaseException, limit: int = 160) -> str:
    """One line of an exception, at most ``limit`` characters (Orbax's can run to pages)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _OrbaxReadErrors(logging.Filter):
    """Drops asyncio's reports of Orbax's failed reads ("exception was never retrieved",
    "unhandled exception during asyncio.run() shutdown").

    When one array of a damaged checkpoint fails to load, Orbax raises that error and leaves its
    sibling reads' failures in futures nobody awaits; asyncio logs each one (a page of
    TensorStore spec) when the future is collected, or when the ``asyncio.run`` of Orbax's thread
    cancels the tasks still pending, and TensorStore's callbacks into the closed event loop raise
    "Event loop is closed" in a background thread. The error itself reaches the caller as a
    :class:`CheckpointError`, so these reports only repeat it. Other reports pass unchanged.

    Example:
      >>> echo = logging.LogRecord("asyncio", logging.ERROR, "", 0, "unhandled exception during asyncio.run() "
      ...                          "shutdown\\ntask: <Task coro=<_deserialize() defined at /x/orbax/y.py:1>>", None, None)
      >>> other = logging.LogRecord("asyncio", logging.ERROR, "", 0, "Task exception was never retrieved", None, None)
      >>> _OrbaxReadErrors().filter(echo), _OrbaxReadErrors().filter(other)
      (False, True)
    """

    ECHOES = ("exception was never retrieved", "unhandled exception during asyncio.run() shutdown")

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(echo in str(record.msg) for echo in self.ECHOES):
            return True
        text = f"{record.exc_info[1] if record.exc_info else ''} {record.getMessage()}"
        return "tensorstore" not in text and "orbax" not in text


_READ_ERRORS = _OrbaxReadErrors()


def _closed_loop_callback(unraisable) -> bool:
    """Whether ``unraisable`` is a TensorStore callback that found Orbax's event loop closed."""
    error = unraisable.exc_value
    return isinstance(error, RuntimeError) and str(error) == "Event loop is closed" and any(
        frame.name == "call_soon_threadsafe" for frame in traceback.extract_tb(unraisable.exc_traceback))


def _quiet_failed_reads() -> None:
    """Keep the echoes of a failed restore off stderr (idempotent; other reports pass unchanged)."""
    logger = logging.getLogger("asyncio")
    if _READ_ERRORS not in logger.filters:
        logger.addFilter(_READ_ERRORS)
    # Each time: a caller's ``warnings.catch_warnings()`` (the CLI runs in one) drops it on exit.
    warnings.filterwarnings("ignore", r"coroutine 'Store\._get_array_metadatas' was never awaited", RuntimeWarning)
    previous = sys.unraisablehook
    if getattr(previous, "_lstmjax_quiet", False):
        return

    def hook(unraisable) -> None:
        if not _closed_loop_callback(unraisable):
            previous(unraisable)

    hook._lstmjax_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


class Checkpointer:
    """Save and restore the train state (Orbax ``CheckpointManager``), checked on the way back.

    Each checkpoint holds the state's arrays (``step``, ``params``, ``opt_state``, the RNG key's
    data), the best parameters so far (early stopping), and a JSON ``meta`` dict (epoch, batch,
    history, ...) with the arrays' :func:`tree_checksum`.

    Args:
      directory: the run directory (checkpoints go to ``directory/checkpoints``).
      max_to_keep: how many recent checkpoints to keep.
      create: create ``checkpoints/`` if missing (``False`` for readers: a run directory without
        checkpoints is then a :class:`CheckpointError`, and nothing is written).

    Attributes:
      restored_step: the step :meth:`restore` restored last (``None`` before).
      skipped: ``[(step, reason)]``: newer checkpoints :meth:`restore` found damaged and skipped.

    Example:
      >>> import tempfile, jax
      >>> from lstmjax import TextClassifier
      >>> from lstmjax import create_train_state, make_optimizer
      >>> state = create_train_state(TextClassifier(20, 2, embed_dim=4, hidden_size=4),
      ...                            jax.random.key(0), make_optimizer())
      >>> with Checkpointer(tempfile.mkdtemp()) as ckpt:
      ...     ckpt.save(1, state, {"epoch": 1})
      ...     restored, meta, best = ckpt.restore(state)
      >>> meta["epoch"], ckpt.restored_step, ckpt.skipped
      (1, 1, [])
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2, *, create: bool = True):
        self.run_directory = pathlib.Path(directory).absolute()
        self.directory = self.run_directory / "checkpoints"
        _check_link(self.run_directory, self.directory)
        if not create and not self.directory.is_dir():
            raise CheckpointError(f"{self.directory}: no checkpoints (is {self.run_directory} a run directory, "
                                  "and did its training save one?)")
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                               enable_async_checkpointing=False, cleanup_tmp_directories=create)
        try:
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        except OSError as e:
            raise CheckpointError(f"{self.directory}: cannot open the checkpoints ({_short(e)})") from e
        self.restored_step: int | None = None
        self.skipped: list[tuple[int, str]] = []

    # ---- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop Orbax's manager and its threads (idempotent)."""
        manager, self._manager = getattr(self, "_manager", None), None
        if manager is not None:
            manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- saving ----------------------------------------------------------------------------------

    @staticmethod
    def _arrays(state, best_params) -> dict[str, Any]:
        return {
            "step": state.step,
            "params": state.params,
            "opt_state": state.opt_state,
            "rng": jax.random.key_data(state.rng),
            "best_params": state.params if best_params is None else best_params,
        }

    def save(self, step: int, state, meta: dict[str, Any], best_params=None, *, overwrite: bool = False) -> None:
        """Save as checkpoint ``step`` (an int: training steps done); ``meta`` must be JSON-serialisable.

        ``overwrite`` replaces an existing checkpoint of the same step (e.g. with pruned weights).
        """
        arrays = self._arrays(state, best_params)
        meta = {**meta, "checksum": tree_checksum(arrays)}
        if overwrite and step in self._manager.all_steps():
            self._manager.delete(step)
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)))
        self._manager.wait_until_finished()

    # ---- reading ---------------------------------------------------------------------------------

    def steps(self) -> list[int]:
        """The complete checkpoints' steps, oldest first."""
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or ``None`` (damaged or not: see :meth:`restore`)."""
        steps = self.steps()
        return steps[-1] if steps else None

    def restore(self, state, step: int | None = None):
        """Restore into the structure of ``state`` (a freshly created :class:`~lstmjax.training.TrainState`).

        Without ``step``, the newest checkpoint that is intact: each damaged one is skipped and
        recorded in :attr:`skipped` (with the reason), and :attr:`restored_step` says which was
        restored.

        Returns:
          ``(state, meta, best_params)``.

        Raises:
          CheckpointError: no checkpoint, or none that restores (each one's reason named): damaged,
            or arrays that do not fit ``state``'s shapes.
        """
        candidates = [step] if step is not None else self.steps()[::-1]
        if not candidates:
            raise CheckpointError(f"{self.directory}: no checkpoint to restore")
        self.skipped = []
        for candidate in candidates:
            try:
                restored = self._restore_step(state, candidate)
            except CheckpointError as e:
                self.skipped.append((candidate, str(e)))
                continue
            self.restored_step = candidate
            for skipped, why in self.skipped:
                warnings.warn(f"checkpoint {skipped} in {self.directory} is {why}; restored checkpoint {candidate}, "
                              "the newest intact one", CheckpointWarning, stacklevel=2)
            return restored
        reasons = "; ".join(f"{s}: {why}" for s, why in self.skipped)
        self.skipped = []
        raise CheckpointError(f"{self.directory}: no checkpoint could be restored ({reasons})")

    def _restore_step(self, state, step: int):
        path = self.directory / str(step)
        if path.is_symlink():
            raise CheckpointError(f"a symbolic link (to {os.readlink(path)}), not a checkpoint: checkpoints must "
                                  "lie inside the run directory")
        template = self._arrays(state, None)
        why = None
        _quiet_failed_reads()
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(template), meta=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001 - Orbax raises bare Exception for damaged files
            why = _short(e)
        if why is not None:
            # The failed read leaves coroutines nobody awaited in reference cycles: collect them now,
            # while the filter of _quiet_failed_reads holds, not at interpreter exit, after the CLI's
            # catch_warnings() has dropped it ("coroutine ... was never awaited" on stderr).
            gc.collect()
            raise CheckpointError(f"damaged or unreadable ({why})")
        arrays, meta = restored["state"], dict(restored["meta"] or {})
        mismatched = [
            jax.tree_util.keystr(path)
            for path, a, b in _zip_with_path(template["params"], arrays["params"])
            if np.shape(a) != np.shape(b)
        ]
        if mismatched:
            raise CheckpointError(f"not of this model: parameter shapes differ at {', '.join(mismatched)}")
        saved = meta.pop("checksum", None)
        if saved is not None and saved != tree_checksum(arrays):
            raise CheckpointError("damaged: its arrays do not match the checksum saved with them")
        state = state.replace(
            step=arrays["step"], params=arrays["params"], opt_state=arrays["opt_state"],
            rng=jax.random.wrap_key_data(arrays["rng"], impl=jax.random.key_impl(state.rng)),
        )
        return state, meta, arrays["best_params"]

    def set_aside(self, steps) -> pathlib.Path:
        """Move checkpoints (damaged ones) out of the way, to ``DIR/checkpoints.damaged/``, and return that folder.

        A resumed run saves again under the same step numbers; nothing is deleted.
        """
        target = self.run_directory / DAMAGED
        for step in steps:
            source = self.directory / str(step)
            if source.exists() or source.is_symlink():
                target.mkdir(exist_ok=True)
                destination = target / str(step)
                if destination.exists():
                    shutil.rmtree(destination)
                os.replace(source, destination)
        self._manager.reload()
        return target


def _zip_with_path(a, b):
    flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
    flat_b = jax.tree.leaves(b)
    return [(path, x, y) for (path, x), y in zip(flat_a, flat_b)]
