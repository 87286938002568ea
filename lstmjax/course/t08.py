"""Tutorial 08 (compression): checks for per-layer pruning, an int8 dense layer and CSR sizes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lstmjax.course._check import (
    Wrong,
    exercise,
    refuse_library_calls,
    returned,
    watching,
)
from lstmjax.course._i18n import tr


def _params(key: int = 0, vocab: int = 40, dim: int = 6):
    """TextClassifier-shaped params with N(0, 1) entries (no ties, no zeros)."""
    from lstmjax import TextClassifier

    model = TextClassifier(vocab, 3, embed_dim=dim, hidden_size=dim)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 1), jnp.int32))  # no compilation
    leaves, treedef = jax.tree.flatten(shapes["params"])
    keys = jax.random.split(jax.random.key(key), len(leaves))
    return jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])


def _name(path) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path)


@exercise("08.1", "Write my_per_layer_masks(params, s)")
def _per_layer(answer):
    from lstmjax.compress import magnitude_masks

    for key, s in ((0, 0.0), (1, 0.5), (2, 0.9), (3, 0.75)):
        params = _params(key)
        with watching(magnitude_masks) as seen:
            got = returned(answer(params, s), "my_per_layer_masks")
        refuse_library_calls(seen, tr("the masks"))
        want = magnitude_masks(params, s, scope="per_layer")
        if jax.tree.structure(jax.tree.map(np.asarray, got)) != jax.tree.structure(want):
            raise Wrong(tr("the masks must be a pytree with the same structure as params (dicts of arrays)."))
        for (path, g), w in zip(jax.tree_util.tree_flatten_with_path(got)[0], jax.tree.leaves(want)):
            g = np.asarray(g)
            if g.shape != w.shape:
                raise Wrong(tr("{name}: mask shape {got}, expected {want}.", name=_name(path), got=g.shape,
                               want=w.shape))
            if g.dtype != np.bool_:
                raise Wrong(tr("{name}: masks are <bool> (True = keep); got {dtype}.", name=_name(path), dtype=g.dtype))
            if not np.array_equal(g, np.asarray(w)):
                pruned, expected = int((~g).sum()), int((~np.asarray(w)).sum())
                if w.ndim < 2:
                    raise Wrong(tr("{name} is a bias: keep all of it (its mask is all True).", name=_name(path)))
                raise Wrong(tr("{name} at s={s}: you prune {pruned} of {size}, the library {expected} "
                               "(round(s * size) smallest |w| of this matrix alone)", name=_name(path), s=s,
                               pruned=pruned, size=g.size, expected=expected)
                            if pruned != expected else
                            tr("{name} at s={s}: the right count, but not the smallest |w| of this matrix.",
                               name=_name(path), s=s))
    return tr("equals magnitude_masks(..., scope='per_layer') at 0, 50, 75 and 90 %.")


def _has_integer_dot(jaxpr) -> bool:
    """Whether ``jaxpr`` (or a jaxpr nested in it, e.g. under ``jit``) has a ``dot_general`` of integers."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general" and all(
                jnp.issubdtype(v.aval.dtype, jnp.integer) for v in eqn.invars):
            return True
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", param)
            if hasattr(inner, "eqns") and _has_integer_dot(inner):
                return True
    return False


@exercise("08.2", "Write int8_dense(x, q, scale) with an integer matrix product")
def _int8_dense(answer):
    from lstmjax.compress import quantize_int8

    key = jax.random.key(3)
    x = jax.random.normal(key, (5, 12), jnp.float32) * jnp.arange(1, 6, dtype=jnp.float32)[:, None]
    w = jax.random.normal(jax.random.fold_in(key, 1), (12, 7), jnp.float32)
    qt = quantize_int8({"kernel": w})["kernel"]
    got = np.asarray(returned(answer(x, qt.q, qt.scale), "int8_dense"))
    if got.shape != (5, 7):
        raise Wrong(tr("the output must be <float32>[batch, out] = (5, 7); got shape {shape}.", shape=got.shape))
    if got.dtype != np.float32:
        raise Wrong(tr("the output must be float32 (rescale the int32 product); got {dtype}.", dtype=got.dtype))
    deq = np.asarray(qt.q, np.float32) * np.asarray(qt.scale)
    exact = np.asarray(x) @ deq
    # Each row of x is quantised with step s_x = max|x_row| / 127, so |x - x_hat| <= s_x / 2 elementwise:
    bound = (np.max(np.abs(np.asarray(x)), axis=1, keepdims=True) / 127 / 2) @ np.abs(deq).sum(0, keepdims=True)
    err = np.abs(got - exact)
    if np.any(err > bound * 1.001 + 1e-5):
        i, j = np.unravel_index(np.argmax(err - bound), err.shape)
        raise Wrong(tr("too far from x @ (q * scale): error {error:.4f} at ({i}, {j}) exceeds the per-row "
                       "quantisation bound {bound:.4f}. Is each row of x quantised with its own scale "
                       "max|x_row| / 127, and is the result multiplied by both scales?", error=err[i, j], i=i, j=j,
                       bound=bound[i, j]))
    if not _has_integer_dot(jax.make_jaxpr(answer)(x, qt.q, qt.scale).jaxpr):
        raise Wrong(tr("close enough, but no integer matrix product found in the jaxpr: multiply the int8 arrays "
                       "with jax.lax.dot(xq, q, preferred_element_type=jnp.int32), not floats."))
    return tr("matches x @ (q * scale) within the activation-quantisation bound, with an int8 × int8 → int32 "
              "product.")


@exercise("08.3", "Write csr_nbytes(w)")
def _csr(answer):
    import scipy.sparse

    rng = np.random.default_rng(0)
    for shape, density in (((50, 40), 0.1), ((7, 300), 0.5), ((100, 8), 0.0), ((30, 30), 1.0)):
        w = (rng.standard_normal(shape) * (rng.random(shape) < density)).astype(np.float32)
        m = scipy.sparse.csr_matrix(w)
        want = (m.data.astype(np.float32).nbytes + m.indices.astype(np.int32).nbytes
                + m.indptr.astype(np.int32).nbytes)
        got = returned(answer(w), "csr_nbytes")
        if int(got) != want:
            nnz = int(np.count_nonzero(w))
            raise Wrong(tr("a {shape} array with {nnz} non-zeros: you say {got} bytes, CSR needs {want} "
                           "= 4·{nnz} values + 4·{nnz} column indices + 4·({rows}+1) row pointers.", shape=shape,
                           nnz=nnz, got=got, want=want, rows=shape[0]))
    return tr("right. CSR costs 8 bytes per kept weight (value + index) against 4 per weight dense, so it is "
              "smaller only above 50 % sparsity; at 90 % it is about 20 % of the dense size.")
