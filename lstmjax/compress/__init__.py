"""Model compression (document §8.2): magnitude pruning and int8 quantisation of a parameter pytree.

* :mod:`~lstmjax.compress.pruning`: :func:`magnitude_masks`, :func:`keep_pruned_zero`,
  :func:`gradual_pruning` (Optax), :func:`sparsity`.
* :mod:`~lstmjax.compress.quantization`: :func:`quantize_int8`, :func:`dequantize`,
  :func:`make_quantized_predict`, sizes.
"""

from lstmjax.compress.pruning import (
    apply_masks,
    gradual_pruning,
    keep_pruned_zero,
    magnitude_masks,
    polynomial_sparsity_schedule,
    prune_step,
    sparsity,
)
from lstmjax.compress.quantization import (
    QuantizedTensor,
    dequantize,
    make_quantized_predict,
    nbytes,
    quantize_int8,
    quantized_apply,
    serialized_nbytes,
)

__all__ = [
    "magnitude_masks", "apply_masks", "sparsity", "keep_pruned_zero", "polynomial_sparsity_schedule", "prune_step",
    "gradual_pruning",
    "QuantizedTensor", "quantize_int8", "dequantize", "quantized_apply", "make_quantized_predict", "nbytes",
    "serialized_nbytes",
]  # fmt: skip
