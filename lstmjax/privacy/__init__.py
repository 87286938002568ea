"""Privacy and security beside training (document §8.3, §9.3).

* :mod:`~lstmjax.privacy.dp`: DP-SGD (:func:`dp_train_step`, :func:`make_dp_optimizer`) and the
  ε it spends (:func:`epsilon`, from ``dp_accounting``).
* :mod:`~lstmjax.privacy.membership`: the loss-threshold membership-inference attack.
* :mod:`~lstmjax.privacy.secure`: secure aggregation by additive secret sharing (on the host;
  across devices: :func:`lstmjax.parallel.secure_sum_across_devices`).
* :mod:`~lstmjax.privacy.encrypted`: Paillier (additively homomorphic) encryption.
"""

from lstmjax.privacy.dp import (
    dp_aggregate,
    dp_train_step,
    epsilon,
    make_dp_optimizer,
    noise_multiplier_for_epsilon,
    per_example_grads,
)
from lstmjax.privacy.encrypted import encrypted_aggregate, encrypted_inference, he_cost
from lstmjax.privacy.membership import membership_attack, per_example_losses, roc_auc
from lstmjax.privacy.secure import secure_sum

__all__ = [
    "dp_aggregate", "dp_train_step", "epsilon", "make_dp_optimizer", "noise_multiplier_for_epsilon", "per_example_grads",
    "membership_attack", "per_example_losses", "roc_auc",
    "secure_sum", "encrypted_aggregate", "encrypted_inference", "he_cost",
]  # fmt: skip
