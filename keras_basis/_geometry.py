"""Geometry and argument checks of the split-basis convolution (pure Python).

Shared by the Keras 3 layer (:class:`keras_basis.BasisConv2D`) and its
tf_keras twin (``keras_basis.tfmot.BasisConv2D``): both inherit
:class:`BasisGeometry` and keep only their backend code (``build``, ``call``,
the serialisation of initializers and friends). Nothing here imports Keras.

Notation: ``c`` input channels, ``s`` splits, ``p = c / s`` channels per
split, ``depth`` the basis depth (``p`` of the widest input; a narrower input,
``c < depth``, uses one split and the first ``c`` basis channels).
"""

from __future__ import annotations

__all__ = [
    "NARROW_INPUTS",
    "SPLIT_MODES",
    "BasisGeometry",
    "check_padding",
    "check_positive_int",
    "int_pair",
    "validate_arguments",
]

# How a call whose input is narrower than the basis depth is computed.
NARROW_INPUTS = ("slice", "pad")

# How the s splits of an input are convolved with the one basis (same result).
SPLIT_MODES = ("batch", "dilated")


def check_positive_int(name, value, layer_name):
    """``value`` as an int > 0, else TypeError/ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"Invalid type for argument `{name}` of layer '{layer_name}'. Expected "
            f"an int. Received {name}={value!r} of type {type(value).__name__}."
        )
    if value <= 0:
        raise ValueError(
            f"Invalid value for argument `{name}` of layer '{layer_name}'. Expected "
            f"a strictly positive integer. Received {name}={value}."
        )
    return value


def int_pair(name, value, layer_name):
    """An int or two ints -> a tuple of 2 positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(
            f"Invalid type for argument `{name}` of layer '{layer_name}'. Expected an "
            f"int or a tuple of 2 ints. Received {name}={value!r}."
        )
    if any(v <= 0 for v in value):
        raise ValueError(
            f"Invalid value for argument `{name}` of layer '{layer_name}'. Expected "
            f"strictly positive values. Received {name}={value!r}."
        )
    return tuple(value)


def check_padding(padding, layer_name):
    """``"valid"`` or ``"same"`` (any case) -> lower case."""
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(
            f"Invalid value for argument `padding` of layer '{layer_name}'. Expected "
            f"'valid' or 'same'. Received padding={padding!r}."
        )
    return padding.lower()


def validate_arguments(name, num_basis, kernel_size, splits, depth, strides, padding,
                       dilation_rate, data_format, narrow_inputs, split_mode="batch"):
    """Validated, normalised constructor arguments of a basis convolution.

    Returns:
        dict with the keys ``num_basis``, ``kernel_size``, ``splits``,
        ``depth``, ``strides``, ``padding``, ``dilation_rate``, ``data_format``,
        ``narrow_inputs`` and ``split_mode``.
    """
    if splits is not None and depth is not None:
        raise ValueError(
            f"Arguments `splits` and `depth` of layer '{name}' are mutually "
            f"exclusive. Received splits={splits}, depth={depth}."
        )
    args = dict(
        num_basis=check_positive_int("num_basis", num_basis, name),
        kernel_size=int_pair("kernel_size", kernel_size, name),
        splits=None if splits is None else check_positive_int("splits", splits, name),
        depth=None if depth is None else check_positive_int("depth", depth, name),
        strides=int_pair("strides", strides, name),
        padding=check_padding(padding, name),
        dilation_rate=int_pair("dilation_rate", dilation_rate, name),
        data_format=data_format,
        narrow_inputs=narrow_inputs,
        split_mode=split_mode,
    )
    if max(args["strides"]) > 1 and max(args["dilation_rate"]) > 1:
        raise ValueError(
            f"Invalid value for arguments `strides` and `dilation_rate` of layer "
            f"'{name}': strides > 1 together with dilation_rate > 1 is not "
            f"supported. Received strides={args['strides']}, "
            f"dilation_rate={args['dilation_rate']}."
        )
    if data_format != "channels_last":
        raise ValueError(
            f"Invalid value for argument `data_format` of layer '{name}'. "
            "BasisConv2D supports only 'channels_last'. "
            f"Received data_format={data_format!r}."
        )
    if narrow_inputs not in NARROW_INPUTS:
        raise ValueError(
            f"Invalid value for argument `narrow_inputs` of layer '{name}'. Expected "
            f"one of {NARROW_INPUTS}. Received narrow_inputs={narrow_inputs!r}."
        )
    if split_mode not in SPLIT_MODES:
        raise ValueError(
            f"Invalid value for argument `split_mode` of layer '{name}'. Expected one "
            f"of {SPLIT_MODES}. Received split_mode={split_mode!r}."
        )
    return args


def dilated_form_exact(kernel_size, strides, padding, dilation_rate):
    """Whether the transpose-free ``"dilated"`` split form equals the batch form.

    The splits are laid side by side along the width (``(N, H, W*s, p)``) and
    convolved with the width dilation multiplied by ``s``: exact when the
    width stride is 1 and the "same" padding of the width is symmetric
    (``(kw - 1) * dw`` even), or with "valid" padding. Convolutions do not
    combine a stride > 1 with a dilation > 1, so the height stride must be 1
    too.
    """
    kw, dw = kernel_size[1], dilation_rate[1]
    return tuple(strides) == (1, 1) and (padding == "valid" or ((kw - 1) * dw) % 2 == 0)


class BasisGeometry:
    """Shape logic of a basis convolution, shared by the Keras 3 and tf_keras layers.

    A mixin: the layer's ``__init__`` calls :meth:`set_geometry` with the
    result of :func:`validate_arguments`, which sets ``num_basis``,
    ``kernel_size``, ``splits``, ``strides``, ``padding``, ``dilation_rate``,
    ``data_format``, ``narrow_inputs``, ``split_mode`` and ``depth_argument`` (the constructor's
    ``depth``, never rewritten); after ``build`` the layer has ``basis`` (a
    weight of shape ``(kh, kw, depth, m)``).
    """

    def set_geometry(self, args):
        """Assign the validated constructor arguments (``validate_arguments``'s dict)."""
        self.num_basis = args["num_basis"]
        self.kernel_size = args["kernel_size"]
        self.splits = args["splits"]
        self.depth_argument = args["depth"]  # `depth` is the effective depth (property)
        self.strides = args["strides"]
        self.padding = args["padding"]
        self.dilation_rate = args["dilation_rate"]
        self.data_format = args["data_format"]
        self.narrow_inputs = args["narrow_inputs"]
        self.split_mode = args.get("split_mode", "batch")

    def set_weight_options(self, lib, use_bias, basis_initializer, bias_initializer,
                           basis_regularizer, bias_regularizer, basis_constraint,
                           bias_constraint):
        """Assign the weight arguments, resolved by ``lib`` (``keras`` or ``tf_keras``)."""
        self.use_bias = bool(use_bias)
        self.basis_initializer = lib.initializers.get(basis_initializer)
        self.bias_initializer = lib.initializers.get(bias_initializer)
        self.basis_regularizer = lib.regularizers.get(basis_regularizer)
        self.bias_regularizer = lib.regularizers.get(bias_regularizer)
        self.basis_constraint = lib.constraints.get(basis_constraint)
        self.bias_constraint = lib.constraints.get(bias_constraint)
        self.input_spec = lib.layers.InputSpec(ndim=4)

    def add_basis_weights(self, depth, **kwargs):
        """Create ``basis`` ``(kh, kw, depth, m)`` and ``bias`` ``(m,)`` (or None)."""
        self.basis = self.add_weight(
            name="basis", shape=self.kernel_size + (depth, self.num_basis),
            initializer=self.basis_initializer, regularizer=self.basis_regularizer,
            constraint=self.basis_constraint, **kwargs,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.num_basis,), initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint, **kwargs,
            )

    def weight_config(self, lib):
        """The weight arguments for ``get_config``, serialised by ``lib``."""
        return {
            "use_bias": self.use_bias,
            "basis_initializer": lib.initializers.serialize(self.basis_initializer),
            "bias_initializer": lib.initializers.serialize(self.bias_initializer),
            "basis_regularizer": lib.regularizers.serialize(self.basis_regularizer),
            "bias_regularizer": lib.regularizers.serialize(self.bias_regularizer),
            "basis_constraint": lib.constraints.serialize(self.basis_constraint),
            "bias_constraint": lib.constraints.serialize(self.bias_constraint),
        }

    @property
    def depth(self):
        """``p``, the depth of the basis filters: the ``depth`` argument, or
        ``c / splits`` of the first input once built (None before)."""
        if self.depth_argument is not None:
            return self.depth_argument
        basis = getattr(self, "basis", None)
        return None if basis is None else int(basis.shape[2])

    def input_channels(self, input_shape):
        """``c`` of a 4D ``input_shape`` (a tuple or list); errors name the layer."""
        input_shape = tuple(input_shape)
        if len(input_shape) != 4:
            raise ValueError(
                f"Layer '{self.name}' expects a 4D input (batch, rows, cols, channels). "
                f"Received input_shape={input_shape}."
            )
        c = input_shape[-1]
        if c is None:
            raise ValueError(
                f"Layer '{self.name}' needs a known number of input channels. "
                f"Received input_shape={input_shape}."
            )
        return int(c)

    def build_depth(self, c):
        """The basis depth to build for a first input of ``c`` channels."""
        if self.depth_argument is None:
            s = self.splits or 1
            if c % s:
                raise ValueError(
                    f"Invalid value for argument `splits` of layer '{self.name}'. "
                    f"Expected a divisor of the input channels c={c}. "
                    f"Received splits={s}."
                )
            depth = c // s
        else:
            depth = self.depth_argument
        self._splits_at(c, depth)  # validates c against the depth
        return depth

    def splits_for(self, c):
        """``(splits, channels per split)`` used for an input with ``c`` channels."""
        depth = self.depth
        if depth is None:  # not built, depth from `splits`
            return self.splits or 1, c // (self.splits or 1)
        return self._splits_at(c, depth)

    def _splits_at(self, c, depth):
        if c % depth == 0:
            return c // depth, depth
        if c < depth:
            return 1, c
        raise ValueError(
            f"Layer '{self.name}' has a basis of depth p={depth}; an input "
            f"must have a multiple of p channels, or fewer than p (sliced basis). "
            f"Received an input with c={c} channels."
        )

    def call_geometry(self, strides=None, padding=None, dilation_rate=None):
        """``(strides, padding, dilation_rate)`` of one call: the per-call
        overrides (a shared basis may run with stride 2 at one site and 1 at
        another), or the layer's own values."""
        strides = self.strides if strides is None else int_pair("strides", strides, self.name)
        dilation_rate = (
            self.dilation_rate
            if dilation_rate is None
            else int_pair("dilation_rate", dilation_rate, self.name)
        )
        padding = self.padding if padding is None else check_padding(padding, self.name)
        return strides, padding, dilation_rate

    def output_shape_for(self, input_shape, strides=None, padding=None, dilation_rate=None):
        """Output shape (a tuple) of a call on ``input_shape``."""
        strides, padding, dilation_rate = self.call_geometry(strides, padding, dilation_rate)
        input_shape = tuple(input_shape)
        s, _ = self.splits_for(self.input_channels(input_shape))
        out = []
        for size, k, st, d in zip(input_shape[1:3], self.kernel_size, strides, dilation_rate):
            if size is None:
                out.append(None)
            elif padding == "same":
                out.append((size + st - 1) // st)
            else:
                out.append((size - ((k - 1) * d + 1)) // st + 1)
        return (input_shape[0], out[0], out[1], s * self.num_basis)

    def geometry_config(self):
        """The config entries of the geometry (constructor arguments as given)."""
        config = {
            "num_basis": self.num_basis,
            "kernel_size": self.kernel_size,
            "depth": self.depth_argument,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "data_format": self.data_format,
        }
        if self.splits is not None:
            config["splits"] = self.splits
        if self.narrow_inputs != "slice":
            config["narrow_inputs"] = self.narrow_inputs
        if self.split_mode != "batch":
            config["split_mode"] = self.split_mode
        return config
