"""tensorflow-model-optimization (tfmot) interop for basis models.

Imported only on demand (``import keras_basis.tfmot``); ``import keras_basis``
never imports tfmot or tf_keras. tfmot 0.8.1 works only with tf_keras (Keras 2)
models, so the route for a Keras 3 user is:

1. build / compress the model with Keras 3 (``keras_basis``);
2. ``twin = keras_basis.tfmot.to_tf_keras(model)``: the same network in
   tf_keras, same weights, same outputs (basis layers become
   :class:`BasisConv2D`, the tf_keras twin);
3. one of the tfmot verb pairs, fine-tuning in between:
   ``quantize_basis_model`` (QAT; no strip step),
   ``prune_coefficients`` / ``strip_pruning`` (train with
   ``callbacks=[UpdatePruningStep()]``),
   ``cluster_basis_model`` / ``strip_clustering``;
4. ``export_tflite(model, path)``.

Importing this module imports tfmot, which sets ``TF_USE_LEGACY_KERAS=1``;
this module restores the variable to its previous state (after binding
``tf.keras``), so Keras 3 code and child processes in the same program are not
switched to Keras 2.

Example:

>>> import keras_basis.tfmot as kbt
>>> qat = kbt.quantize_basis_model(kbt.to_tf_keras(keras3_basis_model))
>>> qat.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
>>> qat.fit(x, y, epochs=1)
>>> kbt.export_tflite(qat, "/tmp/basis_int8.tflite")
"""

from keras_basis._tfmot._compat import tfmot as _tfmot
from keras_basis._tfmot.api import (
    cluster_basis_model,
    coefficient_layers,
    export_tflite,
    prune_coefficients,
    quantize_basis_model,
    strip_clustering,
    strip_pruning,
)
from keras_basis._tfmot.convert import to_tf_keras
from keras_basis._tfmot.layers import BasisConv2D, BasisConv2DQuantizeConfig

UpdatePruningStep = _tfmot.sparsity.keras.UpdatePruningStep

__all__ = [
    "BasisConv2D",
    "BasisConv2DQuantizeConfig",
    "UpdatePruningStep",
    "cluster_basis_model",
    "coefficient_layers",
    "export_tflite",
    "prune_coefficients",
    "quantize_basis_model",
    "strip_clustering",
    "strip_pruning",
    "to_tf_keras",
]
