"""Keras-on-JAX pieces of the GPU runner (``python -m examples.paper_scale_gpu``)."""
