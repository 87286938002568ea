"""The model part: pure cells → the time loop → Linen layers → the classifier. No devices, no data code.

* :mod:`~lstmjax.nn.cells`: ``lstm_step``, ``gru_step``, ``rnn_step``: pure functions of a
  parameter pytree, one line per equation; ``init_*_params``.
* :mod:`~lstmjax.nn.scan`: :func:`scan_cell` (the masked time loop), :func:`length_mask`,
  :func:`reverse_sequences`, :func:`remat_scan_cell`, shard_map typing.
* :mod:`~lstmjax.nn.fused`: :func:`lstm_scan`, the LSTM loop with a hand-written backward pass.
* :mod:`~lstmjax.nn.layers`: ``LSTM``, ``GRU``, ``SimpleRNN`` (stacked, bidirectional, masked)
  and the one-step ``LSTMCell``, ``GRUCell``, ``SimpleRNNCell``.
* :mod:`~lstmjax.nn.classifier`: :class:`TextClassifier`: embedding → recurrent stack → pool → dense.
* :mod:`~lstmjax.nn.checks`: what bad token ids and lengths do, eagerly and under ``jax.jit``;
  :func:`checked` makes them errors under ``jax.jit`` too (``checkify``).
* :mod:`~lstmjax.nn.interop`: weights to and from PyTorch, Keras and Flax NNX's recurrent layers.
* :mod:`~lstmjax.nn.params`: parameter paths and what a weight matrix is.
* :mod:`~lstmjax.nn.nnx`: the same layers and classifier as Flax NNX modules, and
  :func:`to_nnx` / :func:`from_nnx` between Linen variables and NNX state (loaded on first use).
"""

import lazy_loader as _lazy

from lstmjax.nn import cells
from lstmjax.nn.checks import check_lengths, check_token_ids, checked
from lstmjax.nn.cells import (
    gru_step,
    init_gru_params,
    init_lstm_params,
    init_rnn_params,
    lstm_step,
    rnn_step,
)
from lstmjax.nn.classifier import TextClassifier, pool
from lstmjax.nn.fused import lstm_scan
from lstmjax.nn.interop import (
    from_flax_nnx,
    from_keras,
    from_torch,
    layer_like,
    to_flax_nnx,
    to_keras,
    to_torch,
)
from lstmjax.nn.layers import (
    GRU,
    LSTM,
    GRUCell,
    LSTMCell,
    SimpleRNN,
    SimpleRNNCell,
    recurrent_dropout_mask,
)
from lstmjax.nn.params import is_weight_matrix, param_paths, path_name
from lstmjax.nn.scan import length_mask, remat_scan_cell, reverse_sequences, scan_cell

__all__ = [
    # cells: pure functions
    "cells", "lstm_step", "gru_step", "rnn_step", "init_lstm_params", "init_gru_params", "init_rnn_params",
    # the time loop
    "scan_cell", "length_mask", "reverse_sequences", "remat_scan_cell", "lstm_scan",
    # Linen modules
    "LSTMCell", "GRUCell", "SimpleRNNCell", "LSTM", "GRU", "SimpleRNN", "recurrent_dropout_mask",
    "TextClassifier", "pool",
    # input checks (eager errors; checkify under jit)
    "check_token_ids", "check_lengths", "checked",
    # weights: other libraries, paths
    "from_torch", "to_torch", "from_keras", "to_keras", "from_flax_nnx", "to_flax_nnx", "layer_like", "path_name",
    "param_paths", "is_weight_matrix",
    # Flax NNX (loaded on first use: flax.nnx costs a second or two to import)
    "nnx", "to_nnx", "from_nnx",
]  # fmt: skip

__getattr__, _lazy_dir, _ = _lazy.attach(__name__, submodules=["nnx"], submod_attrs={"nnx": ["to_nnx", "from_nnx"]})


def __dir__():
    return sorted(set(globals()) | set(_lazy_dir()))
