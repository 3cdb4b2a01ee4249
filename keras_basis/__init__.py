"""keras-basis: compress Keras 3 CNNs by learning filter bases (Li et al., ICCV 2019)."""

from keras_basis.console import command_startup

# The `keras-basis` command loads TensorFlow quietly and interruptibly; library
# users importing the package are unaffected (see keras_basis/console.py).
with command_startup():
    from keras_basis import latency, maths, tflite
    from keras_basis._transform.macs import count_macs
    from keras_basis.basis_bias import BasisBias
    from keras_basis.export import export_tflite
    from keras_basis.latency import LatencyTable, LayerGeometry, profile_model
    from keras_basis.layers import BasisConv2D
    from keras_basis.transform import (
        BasisPair,
        basis_clone_function,
        basis_pairs,
        compress,
        decompress,
        report,
        strip,
    )

__version__ = "0.1.0"

__all__ = [
    "BasisBias",
    "BasisConv2D",
    "BasisPair",
    "LatencyTable",
    "LayerGeometry",
    "basis_clone_function",
    "basis_pairs",
    "compress",
    "count_macs",
    "decompress",
    "export_tflite",
    "latency",
    "maths",
    "profile_model",
    "report",
    "strip",
    "tflite",
    "__version__",
]
