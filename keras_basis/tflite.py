"""Run, verify, inspect and time ``.tflite`` files (LiteRT).

Helpers around ``ai_edge_litert`` (imported lazily; install with
``pip install keras-basis[tflite]``):

- ``run_tflite``: run a file on inputs (int8 files are fed and read in float).
- ``compare_with_keras``: the file's outputs against the Keras model's.
- ``tflite_ops`` / ``op_histogram``: the ops of a file with the dtype of every
  input and output tensor (builtin or custom, constant or not).
- ``size_breakdown``: where the bytes of a file go (weights, biases,
  quantization parameters, names, the rest).
- ``benchmark_tflite``: batch latency, median and p90 after warm-up, by thread
  count, XNNPACK on or off.

This module works on files only: of keras-basis it imports only the finite
check (``keras_basis._checks``, a leaf module). The per-pair fold-back
timing, which builds and converts Keras models, is
``keras_basis.export.fold_plan``.
"""

from __future__ import annotations

import collections
import os
import struct
import time

import numpy as np

from keras_basis._checks import check_finite, nonfinite

__all__ = [
    "benchmark_tflite",
    "compare_with_keras",
    "op_histogram",
    "run_tflite",
    "size_breakdown",
    "tflite_ops",
]

_INSTALL_HINT = (
    "keras_basis.tflite needs the LiteRT runtime `ai_edge_litert`. "
    "Install it with `pip install keras-basis[tflite]` (or `pip install ai-edge-litert`)."
)


def _litert():
    try:
        from ai_edge_litert import interpreter
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err
    return interpreter


def _schema(tensorflow_fallback=False):
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as err:
        if not tensorflow_fallback:
            raise ImportError(_INSTALL_HINT) from err
        # The same generated flatbuffer reader ships with TensorFlow (export's
        # int8 check runs where TensorFlow is and LiteRT may not be).
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def _content(model_file):
    """Bytes of a .tflite given as a path or as bytes."""
    if isinstance(model_file, (bytes, bytearray)):
        return bytes(model_file)
    if isinstance(model_file, (str, os.PathLike)):
        if not os.path.isfile(model_file):
            raise ValueError(
                "Invalid value for argument `model_file`. Expected an existing .tflite "
                f"file. Received model_file='{os.fspath(model_file)}'."
            )
        with open(model_file, "rb") as f:
            return f.read()
    raise TypeError(
        "Invalid type for argument `model_file`. Expected a path or bytes. "
        f"Received model_file of type {type(model_file).__name__}."
    )


def _describe(model_file, content):
    if isinstance(model_file, (str, os.PathLike)):
        return f"model_file='{os.fspath(model_file)}' ({len(content)} bytes)"
    return f"model_file=<{len(content)} bytes>"


def _invalid_file(model_file, content, err):
    return ValueError(
        "Invalid value for argument `model_file`: not a readable .tflite file (truncated "
        f"or not a TFLite flatbuffer: {err}). Expected a complete .tflite file. "
        f"Received {_describe(model_file, content)}."
    )


def _check_flatbuffer(model_file, content):
    """Cheap sanity check: the TFLite file identifier ``TFL3`` at bytes 4..8."""
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise _invalid_file(model_file, content, "no 'TFL3' identifier")
    return content


def _interpreter(model_file, threads=None, xnnpack=True, content=None):
    lite = _litert()
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(
            "Invalid value for argument `threads`. Expected a positive int or None. "
            f"Received threads={threads!r}."
        )
    resolver = (
        lite.OpResolverType.AUTO
        if xnnpack
        else lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    content = _check_flatbuffer(model_file, _content(model_file) if content is None else content)
    try:
        return lite.Interpreter(
            model_content=content,
            num_threads=threads,
            experimental_op_resolver_type=resolver,
        )
    except (ValueError, RuntimeError) as err:
        raise _invalid_file(model_file, content, str(err).strip()) from err


# ----------------------------------------------------------------- inspection
def _enum_names(cls):
    return {v: k for k, v in vars(cls).items() if not k.startswith("_")}


def tflite_ops(model_file):
    """The operators of a ``.tflite`` file, in execution order (subgraph 0).

    Args:
        model_file: path of a ``.tflite`` file, or its bytes.

    Returns:
        A list of dicts, one per operator: ``op`` (builtin name such as
        ``"CONV_2D"``, or the custom code, e.g. ``"FlexConv2D"``), ``builtin``
        (bool), ``inputs`` and ``outputs`` (lists of dicts with ``name``,
        ``dtype`` (``"FLOAT32"``, ``"INT8"``, ...), ``shape``, ``constant``
        (whether the tensor's data is stored in the file), ``buffer`` (index of
        that data; tensors that share a buffer share the bytes, e.g. a basis
        used by several convolutions) and ``bytes`` (its size)).

    Example:

    >>> [op["op"] for op in tflite_ops("/tmp/m.tflite")][:2]
    ['RESHAPE', 'TRANSPOSE']
    """
    content = _check_flatbuffer(model_file, _content(model_file))
    try:
        return _read_ops(content)
    except (struct.error, IndexError, ValueError, UnicodeDecodeError) as err:
        raise _invalid_file(model_file, content, str(err)) from err


def _read_ops(content, sch=None):
    sch = sch or _schema()
    model = sch.Model.GetRootAs(content, 0)
    op_names = _enum_names(sch.BuiltinOperator)
    type_names = _enum_names(sch.TensorType)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        if code == sch.BuiltinOperator.CUSTOM:
            custom = oc.CustomCode()
            codes.append(((custom or b"CUSTOM").decode(), False))
        else:
            codes.append((op_names.get(code, f"BUILTIN_{code}"), True))
    graph = model.Subgraphs(0)

    def tensor(index):
        t = graph.Tensors(index)
        buf = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        constant = buf is not None and (buf.DataLength() > 0 or buf.Size() > 0)
        return {
            "name": (t.Name() or b"").decode(),  # exported files name inputs and outputs only
            "dtype": type_names.get(t.Type(), str(t.Type())),
            "shape": tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else (),
            "constant": bool(constant),
            "buffer": int(t.Buffer()) if constant else None,
            "bytes": int(buf.DataLength() or buf.Size()) if constant else 0,
        }

    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name, builtin = codes[op.OpcodeIndex()]
        ops.append(
            {
                "op": name,
                "builtin": builtin,
                "inputs": [tensor(j) for j in op.InputsAsNumpy() if j >= 0]
                if op.InputsLength()
                else [],
                "outputs": [tensor(j) for j in op.OutputsAsNumpy() if j >= 0]
                if op.OutputsLength()
                else [],
            }
        )
    return ops


def op_histogram(model_file):
    """Count of each operator of a ``.tflite`` file.

    Args:
        model_file: path of a ``.tflite`` file, or its bytes.

    Returns:
        ``dict`` op name -> count, most frequent first.

    Example:

    >>> op_histogram("/tmp/m.tflite")
    {'CONV_2D': 57, 'ADD': 27, ...}
    """
    counts = collections.Counter(op["op"] for op in tflite_ops(model_file))
    return dict(counts.most_common())


# Field slots of the TFLite schema (flatbuffers: 4 + 2 x field id; ids never change).
_SLOT = {"Tensor.name": 10, "Tensor.quantization": 12, "Buffer.data": 4,
         "Buffer.offset": 6, "Buffer.size": 8, "Quant.min": 4, "Quant.max": 6,
         "Quant.scale": 8, "Quant.zero_point": 10, "SubGraph.name": 12,
         "Model.description": 10, "OperatorCode.custom_code": 6, "Metadata.name": 4,
         "SignatureDef.signature_key": 8, "TensorMap.name": 4}
# Input index of the bias of each weighted op.
_BIAS_INPUT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2,
               "TRANSPOSE_CONV": 3}


def _vector_span(tab, slot, item_bytes, string=False):
    """(start, bytes) of a vector field, length prefix included, or None."""
    o = tab.Offset(slot)
    if not o:
        return None
    n = tab.VectorLen(o)
    return tab.Vector(o) - 4, 4 + n * item_bytes + (1 if string else 0)


def size_breakdown(model_file):
    """Where the bytes of a ``.tflite`` file go.

    Every byte is counted once, under one category (data shared by several
    tensors, such as a shared basis or a vector the file stores once, counts
    once), so the categories add up to the file size.

    Args:
        model_file: path of a ``.tflite`` file, or its bytes.

    Returns:
        dict of byte counts: ``weights`` (constant float and int8 tensor
        data other than biases: the parameters), ``biases`` (the bias inputs
        of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV;
        int32 in int8 files),
        ``quantization`` (the quantization tables of the tensors with their
        scales, zero points, min and max), ``names`` (every string: tensor,
        subgraph, signature and metadata names), ``other`` (operators, tensor
        shapes and types, tables, alignment padding, metadata buffers, int32
        constants such as shapes and axes) and ``total`` (the file size).

    Example:

    >>> size_breakdown("/tmp/m_int8.tflite")
    {'weights': 194992, 'biases': 3024, 'quantization': 85500, 'names': 51140,
     'other': 15640, 'total': 350296}
    """
    content = _check_flatbuffer(model_file, _content(model_file))
    try:
        regions = _regions(content, _schema(tensorflow_fallback=True))
    except (struct.error, IndexError, ValueError) as err:
        raise _invalid_file(model_file, content, str(err)) from err
    sizes = dict.fromkeys(("weights", "biases", "quantization", "names"), 0)
    for category, nbytes in regions.values():
        sizes[category] += nbytes
    sizes["other"] = len(content) - sum(sizes.values())
    sizes["total"] = len(content)
    return sizes


def _regions(content, sch):
    """{start: (category, bytes)} of the file's data, each region once."""
    import flatbuffers

    model = sch.Model.GetRootAs(content, 0)
    regions = {}

    def add(span, category):
        if span is not None:
            regions.setdefault(span[0], (category, span[1]))

    def add_string(tab, slot):
        add(_vector_span(tab, _SLOT[slot], 1, string=True), "names")

    add_string(model._tab, "Model.description")
    for i in range(model.OperatorCodesLength()):
        add_string(model.OperatorCodes(i)._tab, "OperatorCode.custom_code")
    for i in range(model.MetadataLength()):
        add_string(model.Metadata(i)._tab, "Metadata.name")
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        add_string(sig._tab, "SignatureDef.signature_key")
        for t in [sig.Inputs(j) for j in range(sig.InputsLength())] + [
            sig.Outputs(j) for j in range(sig.OutputsLength())
        ]:
            add_string(t._tab, "TensorMap.name")
    op_names = _enum_names(sch.BuiltinOperator)
    codes = [op_names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()))
             for c in (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))]
    buffer_category = {}
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        add_string(graph._tab, "SubGraph.name")
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            slot = _BIAS_INPUT.get(codes[op.OpcodeIndex()])
            if slot is not None and op.InputsLength() > slot and op.Inputs(slot) >= 0:
                buffer_category.setdefault(graph.Tensors(op.Inputs(slot)).Buffer(), "biases")
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            if t.Type() not in (sch.TensorType.INT32, sch.TensorType.INT64):
                buffer_category.setdefault(t.Buffer(), "weights")  # not shapes, axes, ...
            add_string(t._tab, "Tensor.name")
            q = t.Quantization()
            if q is not None:
                tab = q._tab
                inline = tab.Get(flatbuffers.number_types.VOffsetTFlags, tab.Pos - tab.Get(
                    flatbuffers.number_types.SOffsetTFlags, tab.Pos) + 2)
                add((tab.Pos, inline), "quantization")
                for name, item in (("min", 4), ("max", 4), ("scale", 4), ("zero_point", 8)):
                    add(_vector_span(tab, _SLOT[f"Quant.{name}"], item), "quantization")
    for index, category in buffer_category.items():
        if index >= model.BuffersLength():
            continue
        buf = model.Buffers(index)
        span = _vector_span(buf._tab, _SLOT["Buffer.data"], 1)
        if span is not None and span[1] > 4:
            add((span[0] + 4, span[1] - 4), category)  # the data, not its length
        elif buf.Offset() > 1:  # data stored after the flatbuffer (files over 2 GB)
            add((int(buf.Offset()), int(buf.Size())), category)
    return regions


# ------------------------------------------------------------------- running
def _as_list(inputs):
    if isinstance(inputs, (list, tuple)):
        return [np.asarray(a) for a in inputs]
    return [np.asarray(inputs)]


def _quantize_input(array, detail):
    if detail["dtype"] in (np.int8, np.uint8) and not np.issubdtype(array.dtype, np.integer):
        scale, zero = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        q = np.round(array / scale) + zero
        return np.clip(q, info.min, info.max).astype(detail["dtype"])
    return array.astype(detail["dtype"])


def _dequantize_output(array, detail):
    if detail["dtype"] in (np.int8, np.uint8):
        scale, zero = detail["quantization"]
        return (array.astype(np.float32) - zero) * scale
    return array


def run_tflite(model_file, inputs, *, threads=None, xnnpack=True, dequantize=True):
    """Run a ``.tflite`` file on a batch of inputs.

    A file with a static batch of 1 is run sample by sample; a dynamic batch
    is resized to the inputs. Float inputs to an int8 file are quantized with
    the file's input scale and zero point; int8 outputs are dequantized
    unless ``dequantize=False``.

    Args:
        model_file: path of a ``.tflite`` file, or its bytes.
        inputs: an array ``(N, ...)`` (a list of arrays for several inputs).
        threads: interpreter threads (default: the runtime's choice).
        xnnpack: apply the default XNNPACK delegate (default True).
        dequantize: return int8 outputs as float32 (default True).

    Returns:
        The output array ``(N, ...)``, or a list of arrays for several outputs.

    Example:

    >>> y = run_tflite("/tmp/m.tflite", x_test[:8])
    """
    return _run(_interpreter(model_file, threads, xnnpack), inputs, dequantize)


def _run(interp, inputs, dequantize=True):
    in_details = interp.get_input_details()
    arrays = _as_list(inputs)
    if len(arrays) != len(in_details):
        raise ValueError(
            f"Invalid value for argument `inputs`. Expected {len(in_details)} input "
            f"array(s) for this file. Received {len(arrays)}."
        )
    n = len(arrays[0])
    for a, d in zip(arrays, in_details):
        if tuple(a.shape[1:]) != tuple(d["shape"][1:]) or len(a) != n:
            raise ValueError(
                "Invalid value for argument `inputs`. Expected arrays of shape "
                f"(N, {', '.join(str(v) for v in d['shape'][1:])}) with one N. "
                f"Received shape {a.shape}."
            )
    dynamic = any(d["shape_signature"][0] == -1 for d in in_details)
    chunk = n if dynamic else int(in_details[0]["shape"][0])
    if dynamic:
        for d in in_details:
            interp.resize_tensor_input(d["index"], [n] + list(d["shape"][1:]))
    if n % chunk:
        raise ValueError(
            f"Invalid value for argument `inputs`: the file has a static batch of "
            f"{chunk}; expected N a multiple of it. Received N={n}."
        )
    interp.allocate_tensors()
    out_details = interp.get_output_details()
    results = [[] for _ in out_details]
    for start in range(0, n, chunk):
        for a, d in zip(arrays, in_details):
            interp.set_tensor(d["index"], _quantize_input(a[start : start + chunk], d))
        interp.invoke()
        for r, d in zip(results, out_details):
            out = interp.get_tensor(d["index"])
            r.append(_dequantize_output(out, d) if dequantize else out.copy())
    results = [np.concatenate(r) for r in results]
    return results[0] if len(results) == 1 else results


def compare_with_keras(model, model_file, inputs, *, threads=None):
    """Outputs of a ``.tflite`` file against the Keras model on the same inputs.

    Verification fails loudly: NaN or inf in the inputs, in the Keras
    outputs or in the file's outputs raises a ``ValueError`` (a file whose
    outputs are all NaN never "matches"). To verify exactly the bytes that
    were written (not whatever is at the path now, which a concurrent writer
    may have replaced), pass the content returned by
    ``export_tflite(..., return_content=True)``.

    Args:
        model: the ``keras.Model`` the file was exported from.
        model_file: path of the ``.tflite`` file, or its bytes.
        inputs: a finite array ``(N, ...)`` (a list for several inputs).
        threads: interpreter threads.

    Returns:
        dict with ``max_abs_error``, ``max_rel_error`` (max abs error divided
        by the largest absolute Keras output, per output, worst output),
        ``mean_abs_error``, ``size_bytes`` (of the file compared) and, for a
        classifier-shaped output ``(N, k)``, ``top1_agreement`` (fraction of
        samples with the same argmax). Every error is finite.

    Raises:
        ValueError: ``inputs`` hold NaN or inf; an output of the file or of
            the model holds NaN or inf (the message says which, how many and
            the first index); the file is not a readable ``.tflite``; or the
            file and the model have different outputs.

    Example:

    >>> compare_with_keras(model, "/tmp/m.tflite", x_test[:16])["max_rel_error"]
    3.1e-07
    """
    content = _content(model_file)
    arrays = [
        check_finite("inputs", a, f"input {i}" if len(_as_list(inputs)) > 1 else None)
        for i, a in enumerate(_as_list(inputs))
    ]
    keras_out = model(arrays[0] if len(arrays) == 1 else arrays, training=False)
    keras_out = [np.asarray(o) for o in (keras_out if isinstance(keras_out, (list, tuple))
                                         else [keras_out])]
    interp = _interpreter(model_file, threads, content=content)
    lite_out = _run(interp, arrays if len(arrays) > 1 else arrays[0])
    lite_out = lite_out if isinstance(lite_out, list) else [lite_out]
    if len(lite_out) != len(keras_out):
        raise ValueError(
            f"The file has {len(lite_out)} output(s) and the model {len(keras_out)}; "
            "expected the file exported from this model."
        )
    label = _describe(model_file, content)
    for i, (k, t) in enumerate(zip(keras_out, lite_out)):
        for side, out in ((f"the TFLite file ({label})", t), (f"Keras model '{model.name}'", k)):
            found = nonfinite(out)
            if found is not None:
                count, first, value = found
                raise ValueError(
                    f"Verification failed: output {i} of {side} is not finite: {count} of "
                    f"{out.size} values are NaN or inf (the first is {value} at index "
                    f"{first}) on {len(arrays[0])} finite input(s). Expected finite "
                    "outputs; NaN cannot match."
                )
    abs_err, rel_err, mean_err, top1 = 0.0, 0.0, 0.0, None
    for k, t in zip(keras_out, lite_out):
        t = t.reshape(k.shape)
        diff = np.abs(k.astype(np.float64) - t.astype(np.float64))
        abs_err = max(abs_err, float(diff.max()))
        rel_err = max(rel_err, float(diff.max() / max(np.abs(k).max(), 1e-12)))
        mean_err = max(mean_err, float(diff.mean()))
        if k.ndim == 2 and k.shape[1] > 1 and top1 is None:
            top1 = float(np.mean(k.argmax(1) == t.argmax(1)))
    result = {"max_abs_error": abs_err, "max_rel_error": rel_err,
              "mean_abs_error": mean_err, "size_bytes": len(content)}
    if top1 is not None:
        result["top1_agreement"] = top1
    return result


def benchmark_tflite(model_file, *, threads=1, xnnpack=True, runs=50, warmup=5, inputs=None):
    """Latency of one inference of a ``.tflite`` file (its own batch size).

    Args:
        model_file: path of a ``.tflite`` file, or its bytes.
        threads: interpreter threads (default 1).
        xnnpack: apply the default XNNPACK delegate (``False`` uses the builtin
            kernels only, ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``).
        runs: timed invocations (median and p90 over them).
        warmup: untimed invocations first.
        inputs: optional list of input arrays (default random data of each
            input's shape and dtype).

    Returns:
        dict with ``median_ms``, ``p90_ms``, ``mean_ms``, ``min_ms``, ``runs``,
        ``threads``, ``xnnpack``, ``size_bytes`` and ``times_ms`` (every run).

    Example:

    >>> benchmark_tflite("/tmp/m.tflite", threads=2)["median_ms"]
    4.21
    """
    for name, value, low in (("runs", runs, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(
                f"Invalid value for argument `{name}`. Expected an int >= {low}. "
                f"Received {name}={value!r}."
            )
    content = _content(model_file)
    interp = _interpreter(model_file, threads, xnnpack, content=content)
    interp.allocate_tensors()
    details = interp.get_input_details()
    rng = np.random.default_rng(0)
    if inputs is None:
        inputs = []
        for d in details:
            if np.issubdtype(d["dtype"], np.integer):
                info = np.iinfo(d["dtype"])
                inputs.append(rng.integers(info.min, info.max, d["shape"], d["dtype"]))
            else:
                inputs.append(rng.standard_normal(d["shape"]).astype(d["dtype"]))
    for a, d in zip(_as_list(inputs), details):
        interp.set_tensor(d["index"], a)
    for _ in range(warmup):
        interp.invoke()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times[i] = time.perf_counter() - t0
    times *= 1e3
    return {
        "median_ms": float(np.median(times)),
        "p90_ms": float(np.percentile(times, 90)),
        "mean_ms": float(times.mean()),
        "min_ms": float(times.min()),
        "runs": runs,
        "threads": threads,
        "xnnpack": bool(xnnpack),
        "size_bytes": len(content),
        "times_ms": times.tolist(),
    }
