"""Smaller ``.tflite`` files that hold the same model: each object once, no internal names.

The TFLite converter writes every vector and table of the flatbuffer on its
own and names every tensor after the TensorFlow ops fused into it
(``"model/block/conv/Conv2D;model/block/bn/FusedBatchNormV3;..."``). In an
int8 file that is a large share of the bytes, and a share that does not
shrink with the weights: each per-channel quantized tensor stores a float32
scale and an int64 zero point (always 0 for weights and biases) per channel,
so a compressed model with many narrow convolutions pays per-tensor costs the
original pays less often (benchmarks/RESULTS.md, T3).

:func:`shrink` rewrites a file with the schema's own reader and writer
(the generated ``schema_py_generated`` object API and ``flatbuffers``):

1. The names of internal tensors are dropped. The names of the model's
   inputs and outputs, and of every tensor a signature refers to, are kept.
2. Every tensor without data uses buffer 0, the schema's empty buffer,
   instead of one empty buffer each.
3. Every identical string, vector and table is written once and referenced
   wherever it occurs (a flatbuffer may reference one object from several
   places; readers follow offsets and cannot tell). The all-zero zero-point
   vectors of per-channel quantization, equal shapes and operator options
   are the main savings.

Nothing the runtime computes with changes. The result is read back and
compared field by field with the model it was written from; a file whose
tables hold fields this schema does not know, or whose data lies outside the
flatbuffer (files over 2 GB), is returned unchanged, since the object API
would drop what it does not know.
"""

from __future__ import annotations

import struct
import warnings

import flatbuffers
import numpy as np

from keras_basis import tflite

__all__ = ["shrink"]

_IDENTIFIER = b"TFL3"


class _SharingBuilder(flatbuffers.Builder):
    """A flatbuffers builder that writes each distinct string, vector and table once.

    It also writes the fields of a table widest first (a table's fields may lie
    in any order; its vtable says where): the generated code adds them in
    schema order, which pads a 1-byte field between 4-byte ones to 4 bytes.
    """

    def __init__(self, size):
        super().__init__(size)
        self.written = {}
        self.fields = []

    def StartObject(self, numfields):  # noqa: N802 (flatbuffers API)
        super().StartObject(numfields)
        self.fields = []

    def PrependSlot(self, flags, o, x, d):  # noqa: N802 (every scalar field)
        self.fields.append((flags.bytewidth, super().PrependSlot, (flags, o, x, d)))

    def PrependUOffsetTRelativeSlot(self, o, x, d):  # noqa: N802 (every reference field)
        self.fields.append((4, super().PrependUOffsetTRelativeSlot, (o, x, d)))

    def PrependStructSlot(self, v, x, d):  # noqa: N802 (inline structs: none in TFLite)
        raise NotImplementedError("tables with struct fields are not rewritten")

    def EndObject(self):  # noqa: N802 (flatbuffers API)
        for _, write, args in sorted(self.fields, key=lambda field: -field[0]):
            write(*args)
        self.fields = []
        return super().EndObject()

    def _once(self, key, write):
        offset = self.written.get(key)
        if offset is None:
            offset = self.written[key] = write()
        return offset

    def CreateString(self, s, encoding="utf-8", errors="strict"):  # noqa: N802 (flatbuffers API)
        data = s if isinstance(s, bytes) else s.encode(encoding, errors)
        return self._once(("str", data), lambda: super(_SharingBuilder, self).CreateString(data))

    def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers API)
        key = ("vec", x.dtype.str, x.size, x.tobytes())
        return self._once(key, lambda: super(_SharingBuilder, self).CreateNumpyVector(x))


class _Shared:
    """Stands for a schema object while packing: equal objects are packed once."""

    __slots__ = ("key", "obj")

    def __init__(self, obj, key):
        self.obj, self.key = obj, key

    def Pack(self, builder):  # noqa: N802 (the object API's name)
        return builder._once(self.key, lambda: self.obj.Pack(builder))


def _is_table(value, sch):
    return type(value).__module__ == sch.__name__ and type(value).__name__.endswith("T")


def _key(value):
    """A hashable key equal for equal field values (floats and arrays by their bits)."""
    if isinstance(value, _Shared):
        return value.key
    if isinstance(value, np.ndarray):
        return ("arr", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, float):
        return ("f", struct.pack("<d", value))
    if isinstance(value, (list, tuple)):
        return ("list",) + tuple(_key(v) for v in value)
    if hasattr(value, "__dict__"):
        return (type(value).__name__,) + tuple(
            (name, _key(v)) for name, v in sorted(vars(value).items())
        )
    return value


def _share(obj, sch):
    """Replace every schema object below ``obj`` by a :class:`_Shared` (in place)."""
    for name, value in vars(obj).items():
        if isinstance(value, list):
            setattr(obj, name, [
                _Shared(_share(v, sch), _key(v)) if _is_table(v, sch) else v for v in value
            ])
        elif _is_table(value, sch):
            setattr(obj, name, _Shared(_share(value, sch), _key(value)))
    return obj


def _drop_internal_names(model):
    keep = {}
    for sig in model.signatureDefs or []:
        for tmap in (sig.inputs or []) + (sig.outputs or []):
            keep.setdefault(sig.subgraphIndex, set()).add(int(tmap.tensorIndex))
    for index, graph in enumerate(model.subgraphs or []):
        named = keep.get(index, set())
        named.update(int(i) for i in list(_array(graph.inputs)) + list(_array(graph.outputs)))
        for i, tensor in enumerate(graph.tensors or []):
            if i not in named:
                tensor.name = None
    return model


def _array(value):
    return [] if value is None else value


def _no_data(buffer):
    return (buffer.data is None or len(buffer.data) == 0) and not buffer.offset and not buffer.size


def _one_empty_buffer(model):
    """Point every tensor without data at buffer 0, the schema's empty buffer.

    The converter gives each activation its own empty buffer (older converters
    used buffer 0 for all); the runtime reads "no data" either way. Buffers
    of variable tensors and of metadata keep their place.
    """
    buffers = model.buffers or []
    if not buffers or not _no_data(buffers[0]) or getattr(model, "externalBuffers", None):
        return model
    tensors = [t for g in model.subgraphs or [] for t in g.tensors or []]
    pinned = {t.buffer for t in tensors if t.isVariable}
    pinned |= {m.buffer for m in model.metadata or []}
    pinned |= {int(i) for i in _array(model.metadataBuffer)}
    keep = [i for i, b in enumerate(buffers) if i == 0 or i in pinned or not _no_data(b)]
    index = {old: new for new, old in enumerate(keep)}
    for t in tensors:
        t.buffer = index.get(t.buffer, 0)
    for m in model.metadata or []:
        m.buffer = index[m.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = np.array([index[int(i)] for i in model.metadataBuffer], np.int32)
    model.buffers = [buffers[i] for i in keep]
    return model


# ------------------------------------------------------------ what we can't keep
def _field_count(cls, sch, cache={}):  # noqa: B006 (a cache on purpose)
    name = cls.__name__[:-1]
    if name not in cache:
        probe = flatbuffers.Builder(0)
        getattr(sch, f"{name}Start")(probe)
        cache[name] = len(probe.current_vtable)
    return cache[name]


def _unknown_fields(reader, obj, sch):
    """Whether a table under ``reader`` (the file) sets a field ``obj``'s class lacks."""
    tab = reader._tab
    vtable = tab.Pos - tab.Get(flatbuffers.number_types.SOffsetTFlags, tab.Pos)
    vsize = tab.Get(flatbuffers.number_types.VOffsetTFlags, vtable)
    for slot in range(4 + 2 * _field_count(type(obj), sch), vsize, 2):
        if tab.Get(flatbuffers.number_types.VOffsetTFlags, vtable + slot):
            return True
    for name, value in vars(obj).items():
        children = value if isinstance(value, list) else [value]
        for j, child in enumerate(children):
            if not _is_table(child, sch):
                continue
            method = getattr(reader, name[0].upper() + name[1:])
            found = method(j) if isinstance(value, list) else method()
            if isinstance(found, flatbuffers.table.Table):  # a union member
                table = found
                found = getattr(sch, type(child).__name__[:-1])()
                found.Init(table.Bytes, table.Pos)
            if _unknown_fields(found, child, sch):
                return True
    return False


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
                and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    if hasattr(a, "__dict__") or hasattr(b, "__dict__"):
        return type(a) is type(b) and vars(a).keys() == vars(b).keys() and all(
            _same(v, vars(b)[k]) for k, v in vars(a).items())
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return type(a) is type(b) and a == b


# ------------------------------------------------------------------------ API
def shrink(content, *, keep_names=False):
    """The same TFLite model in fewer bytes (see the module docstring).

    Args:
        content: the bytes of a ``.tflite`` file.
        keep_names: keep the names of internal tensors too (default False:
            only inputs, outputs and signature tensors keep theirs).

    Returns:
        bytes: the smaller file, or ``content`` itself when it cannot be
        rewritten without loss (a ``RuntimeWarning`` says so if the rewrite
        came out different from the model read, which would be a bug here).
    """
    sch = tflite._schema(tensorflow_fallback=True)
    content = bytes(content)
    reader = sch.Model.GetRootAs(content, 0)
    model = sch.ModelT.InitFromObj(reader)
    if any(b.offset > 1 for b in model.buffers or []) or _unknown_fields(reader, model, sch):
        return content
    _one_empty_buffer(model)
    if not keep_names:
        _drop_internal_names(model)
    builder = _SharingBuilder(len(content))
    builder.Finish(_share(model, sch).Pack(builder), file_identifier=_IDENTIFIER)
    result = bytes(builder.Output())
    expected = _one_empty_buffer(sch.ModelT.InitFromObj(reader))
    if not keep_names:
        _drop_internal_names(expected)
    if not _same(sch.ModelT.InitFromPackedBuf(result, 0), expected):
        warnings.warn(  # a bug here, never the user's input: keep the converter's file
            "keras_basis could not shrink this TFLite file without changing it (please "
            "report this); the converter's file is kept as it is.",
            RuntimeWarning, stacklevel=2,
        )
        return content
    return result if len(result) < len(content) else content
