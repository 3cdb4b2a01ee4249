"""Porting the authors' PyTorch networks (ofsoundof/learning_filter_basis) to Keras.

- :mod:`examples.authors.args`: their command-line arguments -> our builder call.
- :mod:`examples.authors.mapping`: their state_dict keys -> our layers' weights.

The command line is ``python -m examples.port_authors`` (see that module).
"""
