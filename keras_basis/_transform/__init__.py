"""Private implementation of keras_basis.transform (compress, decompress, report)."""
