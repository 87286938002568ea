"""lstmjax: a pure-functional LSTM in JAX, and a course built on it.

The data path reads top-down::

    raw text ─tokenize─▶ tokens ─Vocab─▶ ids ─pad/bucket─▶ batches
      ─▶ model (embed → recurrent stack → pool → dense) ─▶ step ─▶ metrics ─▶ checkpoint

Cells are pure functions of a parameter pytree (:mod:`lstmjax.cells`); Flax Linen modules
wrap them (:mod:`lstmjax.layers`); :class:`TextClassifier` puts the document's model together.
"""

from lstmjax import cells, interop
from lstmjax.cells import (
    gru_step,
    init_gru_params,
    init_lstm_params,
    init_rnn_params,
    lstm_step,
    rnn_step,
)
from lstmjax.classifier import TextClassifier
from lstmjax.layers import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell

# --- data (issue #3) ---
# --- end data ---

__version__ = "0.1.0"

__all__ = [
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "SimpleRNN",
    "SimpleRNNCell",
    "TextClassifier",
    "cells",
    "gru_step",
    "init_gru_params",
    "init_lstm_params",
    "init_rnn_params",
    "interop",
    "lstm_step",
    "rnn_step",
    # --- data names (issue #3) ---
    # --- end data names ---
]
