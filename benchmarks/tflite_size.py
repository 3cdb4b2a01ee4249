"""Where the bytes of a .tflite file go: weights, biases, quantization parameters, rest.

Reads the flatbuffer with the schema shipped in ``ai_edge_litert``:

- weights: the stored constant buffers of every non-INT32 tensor (a buffer shared
  by several tensors, such as a shared basis, counted once);
- biases: the stored constant buffers of INT32 tensors (int8 files' biases);
- quantization parameters: every tensor's scales (float32, 4 bytes each) and
  zero points (int64, 8 bytes each), per tensor or per channel;
- rest: everything else (tensor names and shapes, operators and their options,
  flatbuffer tables and padding) = file size minus the three above.

    python benchmarks/tflite_bench.py --nets resnet56 --precisions int8 --threads 1
    python benchmarks/tflite_size.py runs/tflite_bench/resnet56_*_int8.tflite
"""

from __future__ import annotations

import argparse
import pathlib


def breakdown(path):
    """Byte counts of one ``.tflite`` file (see the module docstring).

    Args:
        path: a ``.tflite`` file.

    Returns:
        dict with ``file``, ``weights``, ``biases``, ``quantization`` and ``rest``
        (bytes).

    Example:

    >>> breakdown("model_int8.tflite")["weights"]
    194992
    """
    from ai_edge_litert import schema_py_generated as schema

    content = pathlib.Path(path).read_bytes()
    model = schema.Model.GetRootAs(content, 0)
    buffer_dtype, quant = {}, 0
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            buffer_dtype.setdefault(t.Buffer(), t.Type())
            q = t.Quantization()
            if q is not None:
                quant += 4 * q.ScaleLength() + 8 * q.ZeroPointLength()
    weights = biases = 0
    for index, dtype in buffer_dtype.items():
        if index >= model.BuffersLength():
            continue
        buf = model.Buffers(index)
        size = int(buf.DataLength() or buf.Size())
        if dtype == schema.TensorType.INT32:
            biases += size
        else:
            weights += size
    rest = len(content) - weights - biases - quant
    return {"file": len(content), "weights": weights, "biases": biases,
            "quantization": quant, "rest": rest}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=pathlib.Path, metavar="FILE.tflite")
    args = p.parse_args(argv)
    print("| file | bytes | weights | biases (INT32) | quantization params | rest |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in args.files:
        b = breakdown(path)
        print(f"| {path.name} | {b['file']:,} | {b['weights']:,} | {b['biases']:,} | "
              f"{b['quantization']:,} | {b['rest']:,} |")


if __name__ == "__main__":
    main()
