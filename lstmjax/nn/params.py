"""Naming a model's parameters: ``/``-joined paths, and which leaves are weight matrices.

The parameters of every lstmjax model are a nested dict; regularisation, pruning and
quantisation choose leaves by their path (``"recurrent/layer_0_forward/W_h"``) and shape. The
path format and the one idea of a *weight matrix* are defined here, once.

Example:
  >>> import jax.numpy as jnp
  >>> params = {"dense": {"kernel": jnp.zeros((4, 2)), "bias": jnp.zeros(2)}}
  >>> [(p, is_weight_matrix(p, x)) for p, x in leaves_with_paths(params)]
  [('dense/bias', False), ('dense/kernel', True)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

__all__ = ["BIAS_NAMES", "Include", "is_weight_matrix", "leaves_with_paths", "param_paths", "path_name"]

BIAS_NAMES = frozenset({"b", "b_x", "b_h", "bias"})
"""Leaf names of biases in lstmjax's models (cells, ``nn.Dense``)."""

Include = Callable[[str, Any], bool]
"""A choice of leaves: ``include(path, leaf) -> bool`` on ``/``-joined paths."""


def path_name(path: tuple) -> str:
    """A ``jax.tree_util`` key path as a ``/``-joined string.

    Args:
      path: a key path (``DictKey``, ``GetAttrKey``, ``SequenceKey`` entries).

    Returns:
      ``str``, e.g. ``"dense/kernel"``.

    Example:
      >>> import jax
      >>> [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path({"dense": {"kernel": 1}})[0]]
      ['dense/kernel']
    """
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def leaves_with_paths(params: Any) -> list[tuple[str, Any]]:
    """``(path, leaf)`` for every leaf of ``params``, in ``jax.tree`` order.

    Args:
      params: a parameter pytree.

    Returns:
      ``list[tuple[str, array]]``.

    Example:
      >>> leaves_with_paths({"b": 1, "a": {"x": 2}})
      [('a/x', 2), ('b', 1)]
    """
    return [(path_name(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]]


def param_paths(params: Any) -> list[str]:
    """The ``/``-joined path of every leaf of ``params``, in ``jax.tree`` order: the strings an
    ``include`` predicate sees.

    Args:
      params: a parameter pytree.

    Returns:
      ``list[str]``.

    Example:
      >>> import jax.numpy as jnp
      >>> param_paths({"dense": {"kernel": jnp.zeros((2, 2)), "bias": jnp.zeros(2)}})
      ['dense/bias', 'dense/kernel']
    """
    return [path for path, _ in leaves_with_paths(params)]


def is_weight_matrix(path: str, leaf: Any) -> bool:
    """A weight matrix: a leaf with two or more axes that is not a bias.

    In a :class:`lstmjax.TextClassifier`: the embedding table, every ``W_x`` and ``W_h`` and the
    dense ``kernel``; not ``b``, ``b_x``, ``b_h`` or ``bias``.

    Args:
      path: the leaf's ``/``-joined path.
      leaf: the array (only its number of axes is read).

    Returns:
      ``bool``.

    Example:
      >>> import jax.numpy as jnp
      >>> is_weight_matrix("recurrent/layer_0_forward/W_h", jnp.zeros((4, 16))), is_weight_matrix("dense/bias", jnp.zeros(2))
      (True, False)
    """
    return np.ndim(leaf) >= 2 and path.rsplit("/", 1)[-1] not in BIAS_NAMES
