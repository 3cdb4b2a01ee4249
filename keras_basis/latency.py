"""Measured latency of convolution forms on TFLite (XNNPACK): a table keyed by geometry.

A compressed convolution can be computed as the dense ``Conv2D`` or as a
basis pair (``BasisConv2D`` with ``s`` splits and ``m`` filters, then a 1x1
``Conv2D``), its splits folded into the batch or laid side by side along
the width (``split_mode="dilated"``); which is fastest depends on the layer
and the runtime far more than the MAC count says. Each form is timed as a
one-layer ``.tflite`` file at batch 1 and the medians are kept in a
:class:`LatencyTable`, JSON keyed by layer geometry, form (``"dense"``,
``"pair:s=2,m=16"``, ``"pair:s=2,m=16,dilated"``), quantization and
threads, which ``compress(objective="latency")`` reads. A phone fills the
same file through LiteRT's ``benchmark_model`` (``keras-basis profile
--emit-models`` / ``--from-logs``, see ``tflite/README.md``).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import platform
import re
from typing import NamedTuple

import numpy as np

from keras_basis import _convert, fileio, maths
from keras_basis._geometry import dilated_form_exact
from keras_basis._timing import paired_ratios, time_interleaved

__all__ = [
    "FORMAT", "QUANTIZE", "LatencyTable", "LayerGeometry", "LayerSite", "candidate_forms",
    "convert_form", "layer_geometries", "machine", "one_layer_model", "pair_form",
    "paired_ratios", "parse_form", "profile_model", "time_interleaved",
]

FORMAT = "keras-basis/latency-table/1"
QUANTIZE = ("float32", "int8")
RUNTIME = "tflite-xnnpack"
_CALIBRATION_SAMPLES = 8


def _invalid(name, value, expected, where=""):
    return ValueError(f"Invalid value for argument `{name}`{where}. Expected {expected}. "
                      f"Received {name}={value!r}.")


def _positive(name, value, where=" of LayerGeometry"):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or (
            value < 1):
        raise _invalid(name, value, "a positive int", where)
    return int(value)


def _int_pair(name, value):
    value = (value, value) if isinstance(value, (int, np.integer)) else value
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _invalid(name, value, "a positive int or a pair of positive ints",
                       " of LayerGeometry")
    return tuple(_positive(name, v) for v in value)


@dataclasses.dataclass(frozen=True)
class LayerGeometry:
    """One ``Conv2D`` call at batch 1, channels_last: what its latency depends on.

    Args:
        height, width: the *input* spatial size; c, n: input and output channels.
        kernel_size, strides, dilation_rate: int or pair of ints (stored as pairs).
        padding: ``"same"`` or ``"valid"``; use_bias: whether the conv (the pair's
            1x1 conv) has a bias.

    Example:

    >>> LayerGeometry(32, 32, 64, 64, 3).key()
    'h32w32_c64_n64_k3x3_s1x1_same_d1x1_b1'
    """

    height: int
    width: int
    c: int
    n: int
    kernel_size: tuple
    strides: tuple = (1, 1)
    padding: str = "same"
    dilation_rate: tuple = (1, 1)
    use_bias: bool = True

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        for name in ("height", "width", "c", "n"):
            put(name, _positive(name, getattr(self, name)))
        for name in ("kernel_size", "strides", "dilation_rate"):
            put(name, _int_pair(name, getattr(self, name)))
        if not isinstance(self.padding, str) or self.padding.lower() not in ("same", "valid"):
            raise _invalid("padding", self.padding, "'same' or 'valid'", " of LayerGeometry")
        put("padding", self.padding.lower())
        if not isinstance(self.use_bias, (bool, np.bool_)):
            raise _invalid("use_bias", self.use_bias, "a bool", " of LayerGeometry")
        put("use_bias", bool(self.use_bias))
        if min(self.output_size) < 1:
            raise _invalid("height", (self.height, self.width), "an input no smaller than "
                           f"the {self.kernel_size} kernel's extent", " of LayerGeometry")

    def key(self):
        """Stable text key, e.g. ``"h32w32_c64_n64_k3x3_s1x1_same_d1x1_b1"``."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        return (f"h{self.height}w{self.width}_c{self.c}_n{self.n}_k{kh}x{kw}_s{sh}x{sw}_"
                f"{self.padding}_d{dh}x{dw}_b{int(self.use_bias)}")

    def to_dict(self):
        """JSON-ready fields (pairs as lists)."""
        return {f.name: list(v) if isinstance(v, tuple) else v
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, fields):
        """The geometry of :meth:`to_dict`'s dict (lists accepted for pairs)."""
        known = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(fields, dict) or set(fields) - set(known):
            raise _invalid("geometry", fields, f"a dict with keys among {known}")
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
        except TypeError as err:  # a missing required field
            raise _invalid("geometry", fields, f"every required field ({err})") from err

    @classmethod
    def of_layer(cls, layer, input_shape):
        """The geometry of a call of a channels_last ``Conv2D`` (``groups=1``) on
        ``input_shape``: ``(batch, H, W, c)`` or ``(H, W, c)``, sizes known."""
        name = getattr(layer, "name", repr(layer))
        if getattr(layer, "data_format", "channels_last") != "channels_last" or getattr(
                layer, "groups", 1) != 1 or not hasattr(layer, "filters"):
            raise _invalid("layer", name, "a channels_last Conv2D with groups=1")
        h, w, c = _spatial(input_shape, name)
        return cls(h, w, c, int(layer.filters), tuple(layer.kernel_size), tuple(layer.strides),
                   layer.padding, tuple(layer.dilation_rate), bool(layer.use_bias))

    @classmethod
    def of_pair(cls, pair, input_shape=None):
        """The geometry of the dense conv a ``keras_basis.BasisPair`` represents."""
        h, w, c = _spatial(pair.input_shape if input_shape is None else input_shape, pair.name)
        return cls(h, w, c, pair.n, tuple(pair.kernel_size), tuple(pair.strides),
                   pair.padding, tuple(pair.dilation_rate), bool(pair.has_bias))

    @property
    def output_size(self):
        """``(H', W')`` of the convolution's output."""
        out = []
        for size, k, st, d in zip((self.height, self.width), self.kernel_size, self.strides,
                                  self.dilation_rate):
            if self.padding == "same":
                out.append((size + st - 1) // st)
            else:
                out.append((size - ((k - 1) * d + 1)) // st + 1)
        return tuple(out)

    def macs(self, form="dense"):
        """Multiply-accumulates of ``form`` on this geometry (``keras_basis.maths``)."""
        f = parse_form(form)
        kh, kw = self.kernel_size
        ho, wo = self.output_size
        if f["kind"] == "dense":
            return maths.conv_macs(self.c, self.n, kh, kw, ho, wo)
        return maths.basis_macs(self.c, self.n, kh, kw, f["s"], f["m"], ho, wo)


def _spatial(shape, name):
    shape = tuple(shape)[-3:] if len(tuple(shape)) == 4 else tuple(shape)
    if len(shape) != 3 or any(v is None for v in shape):
        raise _invalid("input_shape", shape, "(batch, H, W, c) or (H, W, c), sizes known",
                       f" of layer '{name}'")
    return tuple(int(v) for v in shape)


# ------------------------------------------------------------------- forms
_PAIR = re.compile(r"pair:s=(\d+),m=(\d+)(,dilated)?")


def pair_form(s, m, dilated=False):
    """The form text of a basis pair: ``pair_form(2, 16) == "pair:s=2,m=16"``."""
    s, m = _positive("s", s, ""), _positive("m", m, "")
    if dilated and s < 2:
        raise _invalid("dilated", dilated, "False with s=1 (one split is the batch form)")
    return f"pair:s={s},m={m}" + (",dilated" if dilated else "")


def parse_form(form):
    """``"dense"`` -> ``{"kind": "dense"}``; ``"pair:s=2,m=16[,dilated]"`` -> its parts.

    Raises:
        ValueError: any other text (the message shows the accepted spellings).
    """
    if form == "dense":
        return {"kind": "dense"}
    found = _PAIR.fullmatch(form) if isinstance(form, str) else None
    if found is None or int(found.group(1)) < 1 or int(found.group(2)) < 1 or (
            found.group(3) and int(found.group(1)) < 2):
        raise _invalid("form", form, "'dense', 'pair:s=S,m=M' or 'pair:s=S,m=M,dilated' "
                       "(positive S and M, S > 1 for dilated)")
    return {"kind": "pair", "s": int(found.group(1)), "m": int(found.group(2)),
            "dilated": bool(found.group(3))}


def _check_form(geometry, form):
    f = parse_form(form)
    if f["kind"] == "pair":
        if geometry.c % f["s"]:
            raise _invalid("form", form, f"s dividing c={geometry.c}", f" ({geometry.key()})")
        if f["dilated"] and not dilated_form_exact(geometry.kernel_size, geometry.strides,
                                                   geometry.padding, geometry.dilation_rate):
            raise _invalid("form", form, "no dilated form: it needs a width stride of 1 and "
                           "symmetric 'same' padding", f" ({geometry.key()})")
    return f


def candidate_forms(geometry):
    """The forms ``profile_model(forms="auto")`` times for a geometry.

    ``"dense"``, then pairs with ``s`` in {1, Eq. 13's split
    (``maths.optimal_splits``) when > 1} and ``m`` every multiple of 8 (16
    when ``min(c, n) >= 64``) whose pair has fewer MACs than the dense conv
    and ``m`` at most the rank bound; for ``s > 1`` also the dilated form
    where it is exact (width stride 1).
    """
    g, (kh, kw) = geometry, geometry.kernel_size
    step = 16 if min(g.c, g.n) >= 64 else 8
    forms, dense = ["dense"], g.macs()
    for s in sorted({1, maths.optimal_splits(g.c, g.n, kh, kw)}):
        dilated = s > 1 and dilated_form_exact(g.kernel_size, g.strides, g.padding,
                                               g.dilation_rate)
        bound = maths.rank_bound(g.c, g.n, kh, kw, s)
        for m in range(step, bound + 1, step):
            if g.macs(pair_form(s, m)) >= dense:
                break
            forms.append(pair_form(s, m))
            if dilated:
                forms.append(pair_form(s, m, dilated=True))
    return forms


def one_layer_model(geometry, form, *, seed=0):
    """A one-layer Keras model computing ``form`` at batch shape ``(1, H, W, c)``.

    Dense: ``Conv2D(n, k, ...)``; pair: ``BasisConv2D(m, k, splits=s, ...,
    split_mode=...)`` then ``Conv2D(n, 1, use_bias=...)``. The weights are
    random (the latency does not depend on them).
    """
    import keras

    from keras_basis.layers import BasisConv2D

    f, g = _check_form(geometry, form), geometry
    init = keras.initializers.HeUniform(seed=seed)  # seeded: no global state touched
    bias = {"use_bias": g.use_bias, "bias_initializer": keras.initializers.RandomNormal(
        stddev=0.1, seed=seed + 1)}
    common = {"strides": g.strides, "padding": g.padding, "dilation_rate": g.dilation_rate}
    x = keras.Input(batch_shape=(1, g.height, g.width, g.c))
    if f["kind"] == "dense":
        y = keras.layers.Conv2D(g.n, g.kernel_size, kernel_initializer=init, **bias,
                                **common)(x)
    else:
        mode = {"split_mode": "dilated"} if f["dilated"] else {}
        y = BasisConv2D(f["m"], g.kernel_size, splits=f["s"], basis_initializer=init,
                        **common, **mode)(x)
        y = keras.layers.Conv2D(g.n, 1, kernel_initializer=init, **bias)(y)
    return keras.Model(x, y, name=re.sub(r"\W", "_", f"{g.key()}_{form}"))


def _check_quantize(quantize):
    if quantize not in QUANTIZE:
        raise _invalid("quantize", quantize, f"one of {QUANTIZE}")
    return quantize


def _check_threads(threads):
    return _positive("threads", threads, "")


def convert_form(geometry, form, quantize="float32"):
    """``form`` on ``geometry`` as TFLite bytes (int8: calibrated on N(0, 1) data)."""
    _check_quantize(quantize)
    model = one_layer_model(geometry, form)
    batch_shape = (1, geometry.height, geometry.width, geometry.c)
    data = np.random.default_rng(0).standard_normal(
        (_CALIBRATION_SAMPLES,) + batch_shape[1:]).astype(np.float32)
    return _convert.convert(model, [batch_shape], None if quantize == "float32" else "int8",
                            data, False, _CALIBRATION_SAMPLES)


# ------------------------------------------------------------------- the table
def machine():
    """A one-line description of this machine (CPU model, cores, OS)."""
    cpu = platform.processor() or platform.machine()
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f
                        if ln.startswith("model name")), cpu)
    return f"{cpu}, {os.cpu_count()} cpus, {platform.system()} {platform.machine()}"


def _default_meta(tool="keras-basis profile"):
    return {"machine": machine(), "runtime": RUNTIME, "tool": tool,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _check_ms(ms):
    if isinstance(ms, bool) or not isinstance(ms, (int, float, np.number)) or not (
            math.isfinite(ms) and ms > 0):
        raise _invalid("ms", ms, "a positive finite number of milliseconds")
    return float(ms)


class LatencyTable:
    """Median latency (ms) by layer geometry, form, quantization and threads.

    Saved as JSON (``FORMAT``): ``{"format", "meta": {"machine", "runtime",
    "tool", "date"}, "entries": [{"geometry": {...}, "key", "form",
    "quantize", "threads", "ms", ...}]}``; an entry may carry more fields
    (``p90_ms``, ``runs``, ...). ``key`` may be left out of a hand-written
    entry (it is computed from ``geometry``).

    Example:

    >>> table = LatencyTable()
    >>> g = LayerGeometry(32, 32, 64, 64, 3)
    >>> table.measure(g, ["dense", "pair:s=1,m=32"], "int8")
    {'dense': 0.21, 'pair:s=1,m=32': 0.16}
    >>> table.save("table.json")
    """

    def __init__(self, entries=None, meta=None):
        self.meta = dict(_default_meta() if meta is None else meta)
        self._entries = {}
        for entry in entries or ():
            self._add(entry)

    def _add(self, entry):
        fields = ("geometry", "form", "quantize", "threads", "ms")
        if not isinstance(entry, dict) or any(k not in entry for k in fields):
            raise _invalid("entry", entry, f"a dict with the fields {fields}")
        geometry = LayerGeometry.from_dict(entry["geometry"])
        if entry.get("key", geometry.key()) != geometry.key():
            raise _invalid("key", entry["key"], f"its geometry's key {geometry.key()!r}")
        extra = {k: v for k, v in entry.items() if k not in fields + ("key",)}
        self.set(geometry, entry["form"], entry["quantize"], entry["threads"], entry["ms"],
                 **extra)

    @classmethod
    def load(cls, path):
        """The table saved at ``path``; ValueError naming the path when it is not one."""
        where = f"{os.fspath(path)}: not a latency table"
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except ValueError as err:
                raise ValueError(f"{where}: not JSON ({err}).") from err
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        if found != FORMAT or not isinstance(data.get("entries"), list) or not isinstance(
                data.get("meta", {}), dict):
            raise ValueError(f"{where}: expected a JSON object with \"format\": {FORMAT!r}, "
                             f"\"meta\" and \"entries\" (a list). Received format {found!r}.")
        table = cls(meta=data.get("meta", {}))
        for i, entry in enumerate(data["entries"]):
            try:
                table._add(entry)
            except (TypeError, ValueError) as err:
                raise ValueError(f"{where}: entry {i}: {err}") from err
        return table

    @classmethod
    def of(cls, value, argument="latency_table"):
        """``value`` as a table: None (a new one), a path (loaded) or a LatencyTable."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, (str, os.PathLike)):
            return cls.load(value)
        raise TypeError(f"Invalid type for argument `{argument}`. Expected a LatencyTable, a "
                        f"path or None. Received {type(value).__name__}.")

    def save(self, path):
        """Write the table as JSON at ``path`` atomically; returns the path."""
        data = {"format": FORMAT, "meta": self.meta, "entries": self.entries}
        return fileio.write_text(path, json.dumps(data, indent=1, allow_nan=False) + "\n")

    @staticmethod
    def _slot(geometry, form, quantize, threads):
        key = geometry if isinstance(geometry, str) else geometry.key()
        f = parse_form(form)
        form = "dense" if f["kind"] == "dense" else pair_form(f["s"], f["m"], f["dilated"])
        return key, form, _check_quantize(quantize), _check_threads(threads)

    def get(self, geometry, form, quantize="float32", threads=1):
        """The median ms of ``form`` on ``geometry`` (a LayerGeometry or its key), or None."""
        entry = self._entries.get(self._slot(geometry, form, quantize, threads))
        return None if entry is None else entry["ms"]

    def set(self, geometry, form, quantize, threads, ms, **extra):
        """Store (or replace) one measurement; ``extra`` fields are kept in the entry."""
        if not isinstance(geometry, LayerGeometry):
            raise TypeError("Invalid type for argument `geometry`. Expected a LayerGeometry. "
                            f"Received {type(geometry).__name__}.")
        key, form, quantize, threads = self._slot(geometry, form, quantize, threads)
        self._entries[key, form, quantize, threads] = dict(
            {"geometry": geometry.to_dict(), "key": key, "form": form, "quantize": quantize,
             "threads": threads, "ms": _check_ms(ms)}, **extra)

    def measure(self, geometry, forms, quantize="float32", threads=1, *, runs=30, warmup=5):
        """``{form: ms}`` of ``forms``; times (interleaved) and stores the missing ones."""
        return self.measure_threads(geometry, forms, quantize, (threads,), runs=runs,
                                    warmup=warmup)[_check_threads(threads)]

    def measure_threads(self, geometry, forms, quantize="float32", threads=(1,), *, runs=30,
                        warmup=5):
        """:meth:`measure` for several thread counts (forms converted once): ``{t: {form: ms}}``."""
        forms = list(dict.fromkeys(self._slot(geometry, f, quantize, 1)[1] for f in forms))
        for form in forms:
            _check_form(geometry, form)
        threads = [_check_threads(t) for t in threads]
        missing = [f for f in forms if any(self.get(geometry, f, quantize, t) is None
                                           for t in threads)]
        contents = {f: convert_form(geometry, f, quantize) for f in missing}
        for t in threads:
            todo = [f for f in missing if self.get(geometry, f, quantize, t) is None]
            if todo:
                results = time_interleaved([contents[f] for f in todo], threads=t, runs=runs,
                                           warmup=warmup)
                for f, r in zip(todo, results):
                    self.set(geometry, f, quantize, t, r.pop("median_ms"), **r, runs=runs,
                             size_bytes=len(contents[f]))
        return {t: {f: self.get(geometry, f, quantize, t) for f in forms} for t in threads}

    def __len__(self):  # entries
        return len(self._entries)

    @property
    def modes(self):
        """The ``(quantize, threads)`` modes the table holds dense timings in, sorted."""
        return tuple(sorted({(q, t) for _, form, q, t in self._entries if form == "dense"}))

    @property
    def entries(self):
        """Every entry (a copy), sorted by key, form, quantize and threads."""
        return [dict(self._entries[k]) for k in sorted(self._entries)]

    def __repr__(self):
        return f"LatencyTable({len(self)} entries, machine={self.meta.get('machine')!r})"


# ------------------------------------------------------------------ models
class LayerSite(NamedTuple):
    """A convolution of a model: its name, geometry and current form."""

    layer: str
    geometry: LayerGeometry
    form: str


def layer_geometries(model, *, input_shape=None):
    """Every profiled convolution call of ``model``, in graph order.

    The compressible ``Conv2D`` layers (plain ``Conv2D``, ``groups=1``,
    channels_last; what ``compress`` takes), form ``"dense"``, and every basis
    pair (named by its coefficient conv, as ``decompress(layers=...)`` takes),
    with its current form. ``input_shape`` (without batch) fixes unknown
    spatial sizes of the model's input.
    """
    import keras

    from keras_basis._transform import graph

    _convert.check_model(model)
    if input_shape is not None:
        _convert.input_shapes(model, input_shape, 1)  # validates against the model
    pairs = graph.basis_pairs(model)
    coefs = {id(p.coef_layer) for p in pairs}
    calls = [(layer, owner, node.input_tensors[0]) for layer, owner in graph.walk(model)
             if type(layer) is keras.layers.Conv2D and id(layer) not in coefs
             and layer.groups == 1 and layer.data_format == "channels_last"
             for node in graph.layer_nodes(layer, owner) if node.input_tensors]
    calls += [(pair, pair.owner, graph.pair_input(pair)) for pair in pairs]
    shapes = [tuple(tensor.shape) for _, _, tensor in calls]
    if any(None in shape[1:] for shape in shapes):
        nested = [item.name for item, owner, _ in calls if owner is not model]
        if nested:
            raise ValueError(f"Cannot infer the input shape of layer '{nested[0]}' inside a "
                             f"nested model of '{model.name}'. Expected a model with a static "
                             "input shape, or convolutions that are the model's own layers.")
        specs = [keras.KerasTensor(s) for s in _convert.input_shapes(model, input_shape, 1)]
        probe = keras.Model(model.inputs, [tensor for _, _, tensor in calls])
        out = probe.compute_output_spec(specs[0] if len(specs) == 1 else specs)
        shapes = [tuple(spec.shape) for spec in (out if isinstance(out, (list, tuple)) else [out])]
    sites = []
    for (item, _, _), shape in zip(calls, shapes):
        if isinstance(item, keras.layers.Layer):
            sites.append(LayerSite(item.name, LayerGeometry.of_layer(item, shape), "dense"))
            continue
        g = LayerGeometry.of_pair(item, shape)
        dilated = getattr(item.basis_layer, "split_mode", "batch") == "dilated" and (
            item.s > 1 and dilated_form_exact(g.kernel_size, g.strides, g.padding,
                                              g.dilation_rate))
        sites.append(LayerSite(item.name, g, pair_form(item.s, item.m, dilated)))
    return sites


def _as_tuple(value, name, check):
    values = (value,) if isinstance(value, (str, int)) else tuple(value)
    if not values:
        raise _invalid(name, value, "at least one value")
    return tuple(dict.fromkeys(check(v) for v in values))


def _forms_for(forms, geometry):
    if forms == "auto":
        return candidate_forms(geometry)
    if callable(forms):
        return list(forms(geometry))
    if isinstance(forms, (list, tuple)):
        return ["dense"] + [f for f in forms if f != "dense"]
    raise TypeError("Invalid type for argument `forms`. Expected 'auto', a list of form "
                    f"strings or a callable geometry -> list of forms. Received forms={forms!r}.")


def profile_model(model, *, quantize=QUANTIZE, threads=(1, 2), forms="auto", table=None,
                  runs=30, warmup=5, input_shape=None):
    """Time the forms of every convolution of ``model`` as one-layer TFLite files.

    For every compressible ``Conv2D`` (and every basis pair of a compressed
    model, whose current form is timed too): the dense form and the
    candidate pair forms, per quantization and thread count, timed
    interleaved (:meth:`LatencyTable.measure`). Geometries already in
    ``table`` are not timed again; layers of one geometry are timed once.

    Args:
        model: a built ``keras.Model`` (TensorFlow backend).
        quantize, threads: ``"float32"`` and/or ``"int8"``; thread count(s).
            The defaults are the modes ``compress(objective="latency")``
            budgets without a table: float32 and int8 at 1 and 2 threads.
        forms: ``"auto"`` (:func:`candidate_forms`), a list of forms for every
            layer, or a callable ``geometry -> list of forms``.
        table: a ``LatencyTable`` (or the path of one) to extend; default new.
        runs, warmup: timed and untimed rounds; input_shape: without batch.

    Returns:
        the ``LatencyTable`` (``table`` itself when given as an object).

    Example:

    >>> keras_basis.profile_model(model, quantize="int8").save("table.json")
    """
    quantize = _as_tuple(quantize, "quantize", _check_quantize)
    threads = _as_tuple(threads, "threads", _check_threads)
    table = LatencyTable.of(table, "table")
    todo = {}
    for site in layer_geometries(model, input_shape=input_shape):
        todo.setdefault(site.geometry, ["dense"])
        todo[site.geometry] += [f for f in _forms_for(forms, site.geometry) + [site.form]
                                if f not in todo[site.geometry]]
    for geometry, geometry_forms in todo.items():
        for q in quantize:
            table.measure_threads(geometry, geometry_forms, q, threads, runs=runs,
                                  warmup=warmup)
    return table
