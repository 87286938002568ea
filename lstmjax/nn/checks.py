"""The model's input checks: what happens to bad token ids and lengths, eagerly and under ``jax.jit``.

Eagerly (concrete arrays), :class:`~lstmjax.nn.TextClassifier` and the recurrent layers raise a
``ValueError`` naming the first bad entry: a token id outside ``[0, vocab_size)``, a length
outside ``[0, time]``. Under ``jax.jit`` the values are unknown while tracing, so the model
does something defined instead, never a silent wrap-around:

* a token id outside ``[0, vocab_size)``, negative ones included, embeds as NaN (not the row
  ``id % vocab_size``), so the logits are NaN and a training loss becomes NaN, which
  :func:`lstmjax.fit` reports as a :class:`~lstmjax.training.TrainingError`;
* lengths are clipped to ``[0, time]``.

To make those an error under ``jax.jit`` too, build the model with ``check_inputs=True`` and
run it through :func:`checked` (``jax.experimental.checkify``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

__all__ = ["check_lengths", "check_token_ids", "checked"]


def _first_bad(bad: np.ndarray) -> str:
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"[{', '.join(map(str, index))}]" if len(index) > 1 else f"[{index[0]}]"


def check_token_ids(token_ids: jax.Array, vocab_size: int, *, traced_check: bool = False) -> jax.Array:
    """Token ids checked against ``[0, vocab_size)``; returns them with negative ids made out of range.

    Args:
      token_ids: ``<int>[batch, time]``.
      vocab_size: the embedding's rows.
      traced_check: under a trace, add a ``checkify`` check (run the function through :func:`checked`).

    Returns:
      ``<int>[batch, time]``: the ids, each negative one replaced by ``vocab_size`` (out of range:
      its embedding is NaN, not the row ``id % vocab_size``).

    Raises:
      ValueError: with concrete ids, the first one out of range (its position and value).

    Example:
      >>> import jax.numpy as jnp
      >>> check_token_ids(jnp.array([[1, 2]]), 5).tolist()
      [[1, 2]]
      >>> check_token_ids(jnp.array([[1, 7]]), 5)
      Traceback (most recent call last):
      ...
      ValueError: token_ids[0, 1] = 7 is outside the vocabulary [0, 5) (1 such id)
    """
    if isinstance(token_ids, jax.core.Tracer):
        if traced_check:
            checkify.check(jnp.all((token_ids >= 0) & (token_ids < vocab_size)),
                           f"a token id is outside the vocabulary [0, {vocab_size})")
    else:
        values = np.asarray(token_ids)
        bad = (values < 0) | (values >= vocab_size)
        if bad.any():
            where = _first_bad(bad)
            raise ValueError(f"token_ids{where} = {int(values[tuple(np.argwhere(bad)[0])])} is outside the vocabulary "
                             f"[0, {vocab_size}) ({int(bad.sum())} such id{'s' if bad.sum() > 1 else ''})")
    return jnp.where(token_ids < 0, vocab_size, token_ids)


def check_lengths(lengths: jax.Array, time: int, *, traced_check: bool = False) -> jax.Array:
    """Lengths checked against ``[0, time]``; returns them clipped to it (what a traced call gets).

    Args:
      lengths: ``<int>[batch]``.
      time: the padded length.
      traced_check: under a trace, add a ``checkify`` check (run the function through :func:`checked`).

    Returns:
      ``<int>[batch]``, clipped to ``[0, time]``.

    Raises:
      ValueError: with concrete lengths, the first one out of range.

    Example:
      >>> import jax.numpy as jnp
      >>> check_lengths(jnp.array([3, 0]), 4).tolist()
      [3, 0]
      >>> check_lengths(jnp.array([3, 9]), 4)
      Traceback (most recent call last):
      ...
      ValueError: lengths[1] = 9 is outside [0, time=4] (1 such entry)
    """
    if isinstance(lengths, jax.core.Tracer):
        if traced_check:
            checkify.check(jnp.all((lengths >= 0) & (lengths <= time)), f"a length is outside [0, time={time}]")
    else:
        values = np.asarray(lengths)
        bad = np.flatnonzero((values < 0) | (values > time))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"lengths[{i}] = {int(values[i])} is outside [0, time={time}] "
                             f"({bad.size} such entr{'y' if bad.size == 1 else 'ies'})")
    return jnp.clip(lengths, 0, time)


def checked(fn: Callable) -> Callable:
    """``fn`` with the model's input checks as errors, also under ``jax.jit`` (``jax.experimental.checkify``).

    The model must be built with ``check_inputs=True``; wrap the jitted function
    (``checked(jax.jit(model.apply))``): a bad token id or length then raises
    ``checkify.JaxRuntimeError`` naming it, where plain ``jax.jit`` gives NaN logits or clipped lengths.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lstmjax.nn import TextClassifier
      >>> model = TextClassifier(10, 2, embed_dim=4, hidden_size=4, check_inputs=True)
      >>> variables = model.init(jax.random.key(0), jnp.ones((1, 3), jnp.int32))
      >>> apply = checked(jax.jit(model.apply))
      >>> apply(variables, jnp.array([[3, 4, 0]])).shape
      (1, 2)
      >>> apply(variables, jnp.array([[3, 12, 0]]))
      Traceback (most recent call last):
      ...
      jax._src.checkify.JaxRuntimeError: a token id is outside the vocabulary [0, 10)...
    """
    run = checkify.checkify(fn, errors=checkify.user_checks)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        error, out = run(*args, **kwargs)
        error.throw()
        return out

    return call
