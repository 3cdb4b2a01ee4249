"""keras-basis: compress Keras 3 CNNs by learning filter bases (Li et al., ICCV 2019)."""

from keras_basis import maths
from keras_basis.layers import BasisConv2D

__version__ = "0.1.0"

__all__ = ["BasisConv2D", "maths", "__version__"]
