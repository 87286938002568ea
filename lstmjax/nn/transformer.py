"""The Transformer encoder classifier of the document's §2.2: token + position embeddings → N pre-LN blocks → pool → Dense.

One block is PyTorch's ``nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward,
activation=..., norm_first=True, batch_first=True)``::

    x = x + Dropout(MultiHeadSelfAttention(LayerNorm₁(x), key_padding_mask))
    x = x + Dropout(W₂ Dropout(act(W₁ LayerNorm₂(x) + b₁)) + b₂)

built on Flax's ``nn.MultiHeadDotProductAttention``, ``nn.LayerNorm`` (ε = 1e-5, PyTorch's) and
``nn.Dense``. The feed-forward activation is the exact (erf) GELU by default, as PyTorch's
``"gelu"`` (Flax's ``nn.gelu`` defaults to the tanh approximation), or ReLU. Padded positions
are masked as *keys* only, as PyTorch's ``src_key_padding_mask``: no valid position attends to
padding, and the outputs at valid positions do not depend on what, or how much, follows a text.

Weight layout against PyTorch (``D = d_model``, ``H`` heads of ``D/H``): ``attention/query``,
``key``, ``value`` kernels ``[D, H, D/H]`` are the three ``[D, D]`` blocks of ``in_proj_weight``
transposed and split by head; ``attention/out`` kernel ``[H, D/H, D]`` is ``out_proj.weight``
transposed; ``ff_in``/``ff_out`` are ``linear1``/``linear2`` transposed; ``norm_1``/``norm_2``
``scale`` and ``bias`` are ``norm1``/``norm2`` ``weight`` and ``bias``.
"""

from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstmjax.nn.checks import check_lengths, check_token_ids
from lstmjax.nn.classifier import _keras_embedding_init, pool, token_lengths
from lstmjax.nn.scan import length_mask

Array = jax.Array

__all__ = ["TransformerBlock", "TransformerClassifier"]

LAYER_NORM_EPSILON = 1e-5  # PyTorch's nn.LayerNorm default (Flax's is 1e-6)
_ACTIVATIONS = {"gelu": lambda x: jax.nn.gelu(x, approximate=False), "relu": jax.nn.relu}


class TransformerBlock(nn.Module):
    """One pre-LayerNorm Transformer encoder block: self-attention and feed-forward, each a residual branch.

    Attributes:
      num_heads: attention heads (must divide the input's width).
      ff_size: the feed-forward layer's hidden width (PyTorch's ``dim_feedforward``).
      dropout: dropout on the attention weights and on each branch (and inside the feed-forward).
      activation: ``"gelu"`` (exact, default) or ``"relu"``.
      param_dtype: parameter dtype.

    ``__call__(x <float>[batch, time, d_model], valid <bool>[batch, time], *, deterministic=True)``
    returns ``<float>[batch, time, d_model]``; ``valid`` is False at padding (the keys nobody attends
    to). The attention weights ``<float>[batch, heads, time, time]`` are sown as
    ``intermediates["attention"]["attention_weights"]``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> block = TransformerBlock(num_heads=2, ff_size=16)
      >>> x = jnp.ones((2, 3, 8))
      >>> valid = jnp.array([[True, True, False], [True, False, False]])
      >>> variables = block.init(jax.random.key(0), x, valid)
      >>> y, sown = block.apply(variables, x, valid, mutable=["intermediates"])
      >>> y.shape, sown["intermediates"]["attention"]["attention_weights"][0].shape
      ((2, 3, 8), (2, 2, 3, 3))
      >>> sorted(variables["params"])
      ['attention', 'ff_in', 'ff_out', 'norm_1', 'norm_2']
    """

    num_heads: int
    ff_size: int
    dropout: float = 0.0
    activation: Literal["gelu", "relu"] = "gelu"
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, valid: Array, *, deterministic: bool = True) -> Array:
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be 'gelu' or 'relu'; got {self.activation!r}")
        width = x.shape[-1]
        if width % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide the model width {width}")
        mask = valid[:, None, None, :]  # (B, 1, 1, T): every query sees the valid keys only
        h = nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, param_dtype=self.param_dtype, name="norm_1")(x)
        h = nn.MultiHeadDotProductAttention(self.num_heads, dropout_rate=self.dropout, param_dtype=self.param_dtype,
                                            name="attention")(h, h, mask=mask, deterministic=deterministic,
                                                              sow_weights=True)  # (B, T, D)
        x = x + nn.Dropout(self.dropout)(h, deterministic=deterministic)
        h = nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, param_dtype=self.param_dtype, name="norm_2")(x)
        h = _ACTIVATIONS[self.activation](nn.Dense(self.ff_size, param_dtype=self.param_dtype, name="ff_in")(h))
        h = nn.Dense(width, param_dtype=self.param_dtype, name="ff_out")(
            nn.Dropout(self.dropout)(h, deterministic=deterministic))  # (B, T, D)
        return x + nn.Dropout(self.dropout)(h, deterministic=deterministic)


class TransformerClassifier(nn.Module):
    """Token + learned position embeddings → ``num_layers`` :class:`TransformerBlock` → LayerNorm → pool → Dense.

    Attributes:
      vocab_size: number of token ids (PAD = 0 included).
      num_classes: number of labels.
      embed_dim: the model width ``d_model`` (token and position embeddings).
      max_len: the longest text (position embeddings); a longer input is an error (under
        ``jax.export`` or ONNX, where the time axis is symbolic, positions past it embed as NaN).
      num_layers: encoder blocks.
      num_heads: attention heads (must divide ``embed_dim``).
      ff_size: the feed-forward hidden width.
      activation: ``"gelu"`` (exact, default) or ``"relu"``.
      dropout: dropout inside the blocks (attention weights, residual branches, feed-forward).
      embed_dropout: dropout on the summed embeddings.
      pooling: ``"cls"`` (default: a learned vector, parameter ``cls``, is prepended to every
        text as BERT's [CLS] token, and its final state is the text's vector) or ``"mean"``
        (the masked mean of the final states over the text's tokens; no extra position).
      output_dropout: dropout on the pooled features before the dense layer.
      param_dtype: parameter dtype.
      check_inputs: under ``jax.jit``, check token ids and lengths with ``checkify``.

    ``__call__(token_ids <int32>[batch, time], lengths <int32>[batch] | None, *, deterministic=True)``
    returns ``<float32>[batch, num_classes]`` logits; without ``lengths``, the non-PAD ids are
    counted (right padding). Every block's attention weights ``<float>[batch, heads, T', T']``
    (``T' = time + 1`` with ``"cls"`` pooling, position 0 the [CLS] vector) are sown as
    ``intermediates["blocks_<i>"]["attention"]["attention_weights"]``. A text of length 0 gives the
    logits of the [CLS] vector alone (``"cls"``) or of a zero vector (``"mean"``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = TransformerClassifier(vocab_size=100, num_classes=2, embed_dim=8, max_len=16, num_heads=2,
      ...                               ff_size=16)
      >>> ids = jnp.array([[5, 7, 9, 0], [3, 0, 0, 0]], dtype=jnp.int32)
      >>> variables = model.init(jax.random.key(0), ids)
      >>> model.apply(variables, ids).shape
      (2, 2)
      >>> sorted(variables["params"])
      ['blocks_0', 'blocks_1', 'cls', 'dense', 'embedding', 'final_norm', 'position']
    """

    vocab_size: int
    num_classes: int
    embed_dim: int = 128
    max_len: int = 512
    num_layers: int = 2
    num_heads: int = 4
    ff_size: int = 256
    activation: Literal["gelu", "relu"] = "gelu"
    dropout: float = 0.0
    embed_dropout: float = 0.0
    pooling: Literal["cls", "mean"] = "cls"
    output_dropout: float = 0.0
    param_dtype: Any = jnp.float32
    check_inputs: bool = False

    @property
    def uses_dropout(self) -> bool:
        """Whether any dropout rate is set (a training step then draws dropout keys per example)."""
        return any(rate > 0 for rate in (self.dropout, self.embed_dropout, self.output_dropout))

    def setup(self):
        self._check_options()
        self.embedding = nn.Embed(self.vocab_size, self.embed_dim, param_dtype=self.param_dtype,
                                  embedding_init=_keras_embedding_init)
        extra = 1 if self.pooling == "cls" else 0
        self.position = nn.Embed(self.max_len + extra, self.embed_dim, param_dtype=self.param_dtype,
                                 embedding_init=nn.initializers.normal(0.02))
        if self.pooling == "cls":
            self.cls = self.param("cls", nn.initializers.normal(0.02), (self.embed_dim,), self.param_dtype)
        self.blocks = [TransformerBlock(self.num_heads, self.ff_size, self.dropout, self.activation,
                                        param_dtype=self.param_dtype) for _ in range(self.num_layers)]
        self.final_norm = nn.LayerNorm(epsilon=LAYER_NORM_EPSILON, param_dtype=self.param_dtype)
        self.dense = nn.Dense(self.num_classes, param_dtype=self.param_dtype)
        self.embed_drop = nn.Dropout(self.embed_dropout)
        self.output_drop = nn.Dropout(self.output_dropout)

    def _check_options(self) -> None:
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean' for a Transformer; got {self.pooling!r}")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be 'gelu' or 'relu'; got {self.activation!r}")
        for name in ("max_len", "num_layers", "num_heads", "ff_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} must divide embed_dim={self.embed_dim}")

    def embed(self, token_ids: Array) -> Array:
        """Token ids ``<int32>[batch, time]`` → token embeddings ``<float>[batch, time, embed_dim]`` (no positions).

        Example:
          >>> import jax, jax.numpy as jnp
          >>> model = TransformerClassifier(10, 2, embed_dim=4, max_len=8, num_heads=2, ff_size=8)
          >>> ids = jnp.ones((1, 3), jnp.int32)
          >>> model.apply(model.init(jax.random.key(0), ids), ids, method=model.embed).shape
          (1, 3, 4)
        """
        if not jnp.issubdtype(token_ids.dtype, jnp.integer):
            raise TypeError(f"token_ids must be integers; got dtype {token_ids.dtype}")
        return self.embedding(check_token_ids(token_ids, self.vocab_size, traced_check=self.check_inputs))

    def encode(self, embedded: Array, lengths: Array, *, deterministic: bool = True) -> tuple[Array, Array]:
        """Token embeddings → the final (normalised) states and their validity.

        Args:
          embedded: ``<float>[batch, time, embed_dim]``, time <= ``max_len``.
          lengths: ``<int>[batch]``.

        Returns:
          ``(states <float>[batch, T', embed_dim], valid <bool>[batch, T'])``, ``T' = time + 1``
          with ``"cls"`` pooling (position 0 the [CLS] vector, always valid), else ``time``.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> model = TransformerClassifier(10, 2, embed_dim=4, max_len=8, num_heads=2, ff_size=8)
          >>> ids = jnp.ones((2, 3), jnp.int32)
          >>> variables = model.init(jax.random.key(0), ids)
          >>> e = model.apply(variables, ids, method=model.embed)
          >>> states, valid = model.apply(variables, e, jnp.array([3, 1]), method=model.encode)
          >>> states.shape, valid.astype(int).tolist()
          ((2, 4, 4), [[1, 1, 1, 1], [1, 1, 0, 0]])
        """
        time = embedded.shape[1]
        if isinstance(time, int) and time > self.max_len:  # a symbolic time (jax.export, ONNX) is the caller's to bound
            raise ValueError(f"the input has {time} time steps, more than max_len={self.max_len} (position embeddings)")
        lengths = check_lengths(lengths, time, traced_check=self.check_inputs)
        valid = length_mask(lengths, time)  # (B, T)
        x = embedded
        if self.pooling == "cls":  # [CLS] at position 0: (B, 1 + T, E); a pad, not a concatenation, for ONNX's sake
            x = jnp.pad(x, ((0, 0), (1, 0), (0, 0)))
            first = jax.lax.broadcasted_iota(jnp.int32, (1, x.shape[1], 1), 1) == 0  # (1, T', 1)
            x = jnp.where(first, self.cls.astype(x.dtype), x)
            valid = jnp.pad(valid, ((0, 0), (1, 0)), constant_values=True)
        positions = jax.lax.broadcasted_iota(jnp.int32, (1, x.shape[1]), 1)  # (1, T'): an iota traces symbolic sizes
        x = x + self.position(positions)  # (B, T', E)
        x = self.embed_drop(x, deterministic=deterministic)
        for block in self.blocks:
            x = block(x, valid, deterministic=deterministic)
        return self.final_norm(x), valid

    def logits_from_embeddings(self, embedded: Array, lengths: Array, *, deterministic: bool = True) -> Array:
        """Token embeddings ``<float>[batch, time, embed_dim]`` and ``lengths <int>[batch]`` → logits ``<float32>[batch, num_classes]``.

        Example:
          >>> import jax, jax.numpy as jnp
          >>> model = TransformerClassifier(10, 3, embed_dim=4, max_len=8, num_heads=2, ff_size=8, pooling="mean")
          >>> ids = jnp.ones((2, 3), jnp.int32)
          >>> variables = model.init(jax.random.key(0), ids)
          >>> e = model.apply(variables, ids, method=model.embed)
          >>> logits = model.apply(variables, e, jnp.array([3, 1]), method=model.logits_from_embeddings)
          >>> bool(jnp.allclose(logits, model.apply(variables, ids, jnp.array([3, 1]))))
          True
        """
        states, valid = self.encode(embedded, lengths, deterministic=deterministic)
        if self.pooling == "cls":
            features = states[:, 0]  # (B, E): the [CLS] position
        else:
            features = pool(states, jnp.sum(valid, axis=1, dtype=jnp.int32), "mean")  # (B, E)
        return self.dense(self.output_drop(features, deterministic=deterministic))  # (B, num_classes)

    def __call__(self, token_ids: Array, lengths: Array | None = None, *, deterministic: bool = True) -> Array:
        lengths = token_lengths(token_ids, lengths)
        return self.logits_from_embeddings(self.embed(token_ids), lengths, deterministic=deterministic)

    def predict_proba(self, token_ids: Array, lengths: Array | None = None) -> Array:
        """Class probabilities ``<float32>[batch, num_classes]`` (softmax of the logits).

        Example:
          >>> import jax, jax.numpy as jnp
          >>> m = TransformerClassifier(10, 4, embed_dim=4, max_len=8, num_heads=2, ff_size=8)
          >>> p = m.apply(m.init(jax.random.key(0), jnp.ones((1, 2), jnp.int32)), jnp.array([[3, 0]], jnp.int32),
          ...             method=m.predict_proba)
          >>> p.shape, bool(jnp.allclose(p.sum(-1), 1.0))
          ((1, 4), True)
        """
        return jax.nn.softmax(self(token_ids, lengths))
