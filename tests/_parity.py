"""Assertions shared by the PyTorch and Keras parity tests."""

import dataclasses

import jax
import numpy as np

ATOL = 1e-5  # max abs error, float32


@dataclasses.dataclass(frozen=True)
class Case:
    """One configuration of the parity matrix."""

    kind: str  # "lstm", "gru", "rnn_tanh", "rnn_relu"
    num_layers: int
    bidirectional: bool
    hoist_inputs: bool = True

    @property
    def id(self) -> str:
        return (f"{self.kind}-L{self.num_layers}-{'bi' if self.bidirectional else 'uni'}"
                + ("" if self.hoist_inputs else "-nohoist"))

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def states_per_direction(self) -> int:
        return 2 if self.kind == "lstm" else 1


def assert_close(actual, expected, what: str, atol: float = ATOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, atol=atol, rtol=0, err_msg=what)


def assert_trees_close(actual, expected, what: str):
    """Leaf-by-leaf comparison with the leaf's path in the message; the structures must match."""
    flat_a, tree_a = jax.tree_util.tree_flatten_with_path(actual)
    flat_e, tree_e = jax.tree_util.tree_flatten_with_path(expected)
    assert tree_a == tree_e, f"{what}: structure {tree_a} != {tree_e}"
    for (path, a), (_, e) in zip(flat_a, flat_e):
        name = f"{what}{jax.tree_util.keystr(path)}"
        assert np.abs(e).max() > 1e-3, f"{name}: the reference is ~0, so the comparison proves nothing"
        assert_close(a, e, name)
