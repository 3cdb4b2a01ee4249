"""Private implementation of :mod:`keras_basis.tfmot` (tf_keras + tfmot bridge).

Imported only through ``import keras_basis.tfmot``; ``import keras_basis`` never
imports this package, tf_keras or tensorflow_model_optimization.
"""
