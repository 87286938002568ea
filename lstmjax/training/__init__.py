"""The training part: state, device-free steps, the loop and its callbacks, metrics, checkpoints.

* :mod:`~lstmjax.training.state`: :class:`TrainState`, :func:`create_train_state`,
  :func:`make_optimizer` (Optax).
* :mod:`~lstmjax.training.steps`: pure :func:`train_step` / :func:`eval_step` and their
  device-free pieces (:func:`gradient_sums`, :func:`apply_gradient_sums`).
* :mod:`~lstmjax.training.loop`: :func:`fit`, :func:`evaluate`; :mod:`~lstmjax.training.callbacks`:
  early stopping, checkpointing, progress, logs; :mod:`~lstmjax.training.placement`: where steps
  run (:class:`OneDevice`; :class:`lstmjax.parallel.DataParallel` is the other).
* :mod:`~lstmjax.training.metrics`, :mod:`~lstmjax.training.checkpoint`.
* Overfitting remedies (§9.2): :mod:`~lstmjax.training.regularization` (L1/L2 as Optax),
  :mod:`~lstmjax.training.ensemble`, :mod:`~lstmjax.training.crossval`.
"""

from lstmjax.training.callbacks import (
    Callback,
    Checkpointing,
    EarlyStopping,
    EpochLog,
    ProgressBar,
)
from lstmjax.training.checkpoint import Checkpointer, CheckpointError, CheckpointWarning, saved_steps
from lstmjax.training.crossval import cross_validate, stratified_kfold
from lstmjax.training.ensemble import (
    create_ensemble,
    ensemble_evaluate,
    ensemble_fit,
    ensemble_member,
)
from lstmjax.training.loop import (
    TrainingError,
    evaluate,
    evaluate_sums,
    model_vocab_size,
    fit,
    plot_history,
)
from lstmjax.training.metrics import classification_report, confusion_matrix
from lstmjax.training.placement import OneDevice, Placement, keyed
from lstmjax.training.regularization import add_penalty_gradient, penalty
from lstmjax.training.state import (
    TrainState,
    create_train_state,
    make_optimizer,
    standard_promotion,
)
from lstmjax.training.steps import (
    apply_gradient_sums,
    eval_step,
    example_keys,
    example_mask,
    gradient_sums,
    sparse_cross_entropy,
    step_key,
    train_step,
)

__all__ = [
    # state and optimizer
    "TrainState", "create_train_state", "make_optimizer", "standard_promotion",
    # steps
    "train_step", "eval_step", "gradient_sums", "apply_gradient_sums", "step_key", "keyed", "example_keys",
    "example_mask", "sparse_cross_entropy",
    # the loop
    "fit", "evaluate", "evaluate_sums", "model_vocab_size", "TrainingError", "plot_history", "OneDevice", "Placement",
    "Callback", "EarlyStopping", "Checkpointing", "ProgressBar", "EpochLog",
    # metrics and checkpoints
    "classification_report", "confusion_matrix", "Checkpointer", "CheckpointError", "CheckpointWarning", "saved_steps",
    # remedies
    "add_penalty_gradient", "penalty", "create_ensemble", "ensemble_fit", "ensemble_evaluate", "ensemble_member",
    "cross_validate", "stratified_kfold",
]  # fmt: skip
