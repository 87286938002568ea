"""The configuration of a pretraining run (``lstmjax pretrain``): one frozen dataclass, a comment on every field.

Kept apart from :mod:`lstmjax.app.pretrain` so that the command line can list its options
without importing JAX (as :mod:`lstmjax.app.config` for ``lstmjax train``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import field
from typing import Any

from lstmjax.app.config import ConfigError

__all__ = ["PretrainConfig"]

RECURRENT = ("lstm", "gru", "rnn")
MASK_RATE = 0.15  # BERT's (lstmjax.training.pretrain.MASK_RATE; not imported here: that module loads JAX)


def _f(default: Any, help: str, **extra: Any):
    return field(default=default, metadata={"help": help, **extra})


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    """Everything that defines a pretraining run: the data, the encoder, the objective's budget.

    Example:
      >>> c = PretrainConfig(model="transformer", steps=200)
      >>> c.objective, PretrainConfig.from_json(c.to_json()) == c
      ('masked tokens', True)
    """

    # --- data: the texts of the training split, labels ignored --------------------------------
    data: str = _f("builtin", "dataset whose training texts are read (labels ignored): builtin, a folder, a hub name")
    tokenizer: str = _f("english", "tokenizer", choices=("english", "jieba", "char", "bpe", "wordpiece"))
    max_len: int = _f(64, "tokens kept per text (the fine-tuned model's max_len too)")
    vocab_size: int = _f(20000, "vocabulary size, PAD and UNK included")
    min_freq: int = _f(1, "minimum count for a token to enter the vocabulary")
    # --- the encoder (the classifier's, without its head) ---------------------------------------
    model: str = _f("lstm", "lstm | gru | rnn: next-token language model; transformer: masked tokens (BERT)",
                    choices=(*RECURRENT, "transformer"))
    embed_dim: int = _f(128, "embedding size (the Transformer's width d_model)")
    hidden: int = _f(128, "recurrent hidden size (recurrent models)")
    layers: int = _f(1, "stacked recurrent layers, or Transformer blocks")
    heads: int = _f(4, "attention heads (transformer)")
    ff_size: int = _f(256, "feed-forward hidden width (transformer)")
    pooling: str = _f("mean", "the fine-tuned Transformer's pooling: mean | cls ([CLS] prepended in pretraining too)",
                      choices=("mean", "cls"))
    dropout: float = _f(0.0, "dropout inside the Transformer blocks during pretraining")
    mask_rate: float = _f(MASK_RATE, "share of tokens chosen for prediction (transformer)")
    # --- the budget: whichever ends first -------------------------------------------------------
    steps: int | None = _f(None, "stop after this many steps (default: no step limit)")
    epochs: int = _f(1, "passes over the texts")
    time_limit: float | None = _f(None, "stop after this many seconds of training, counted after the first "
                                        "(compiling) step (default: none)")
    lr: float = _f(1e-3, "Adam's learning rate")
    batch_size: int = _f(32, "texts per batch")
    seed: int = _f(0, "random seed (initialisation, order, masking)")
    log_every: int = _f(50, "log (and record in metrics.json) the loss every this many steps")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, choices = getattr(self, f.name), f.metadata.get("choices")
            if choices and value not in choices:
                raise ConfigError(f"{f.name} must be one of {', '.join(choices)}; got {value!r}", f.name)
        for name in ("max_len", "vocab_size", "min_freq", "embed_dim", "hidden", "layers", "heads", "ff_size",
                     "epochs", "batch_size", "log_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}", name)
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1; got {self.steps}", "steps")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"time_limit must be positive (seconds); got {self.time_limit}", "time_limit")
        if not 0.0 < self.mask_rate < 1.0:
            raise ConfigError(f"mask_rate must be in (0, 1); got {self.mask_rate}", "mask_rate")
        if self.model == "transformer" and self.embed_dim % self.heads:
            raise ConfigError(f"heads={self.heads} must divide embed_dim={self.embed_dim}", "heads")

    @property
    def objective(self) -> str:
        """``"next token"`` (recurrent models) or ``"masked tokens"`` (the Transformer)."""
        return "masked tokens" if self.model == "transformer" else "next token"

    def to_json(self) -> str:
        """The config as a JSON object string."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PretrainConfig:
        """Read :meth:`to_json`'s output; unknown fields are an error naming them."""
        raw = json.loads(text)
        unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)}) if isinstance(raw, dict) else None
        if unknown is None or unknown:
            raise ValueError(f"not a pretraining config: unknown field(s) {', '.join(unknown or ['(not an object)'])}")
        return cls(**raw)
