"""Import tf_keras and tensorflow_model_optimization without leaking their side effect.

tfmot 0.8.1 sets ``TF_USE_LEGACY_KERAS=1`` in ``os.environ`` when imported. That
variable decides what ``tf.keras`` resolves to the first time it is touched, and
is inherited by child processes. We bind ``tf.keras`` first (to whatever the
caller's environment says, normally Keras 3), import tfmot (which then uses the
``tf_keras`` package explicitly) and restore the variable as it was.
"""

import os

import tensorflow as tf

# Every tfmot import of keras_basis goes through this module (see above).

_ENV = "TF_USE_LEGACY_KERAS"
_previous = os.environ.get(_ENV)
try:
    getattr(tf.keras, "version", None)  # bind tf.keras before tfmot sets the variable
    import tensorflow_model_optimization as tfmot  # noqa: E402
    import tf_keras  # noqa: E402
    from tensorflow_model_optimization.python.core.clustering.keras.cluster_wrapper import (
        ClusterWeights,
    )
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_wrapper import (
        PruneLowMagnitude,
    )
finally:
    if _previous is None:
        os.environ.pop(_ENV, None)
    else:
        os.environ[_ENV] = _previous

__all__ = ["ClusterWeights", "PruneLowMagnitude", "tf", "tf_keras", "tfmot"]
