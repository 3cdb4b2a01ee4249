"""``python -m keras_basis``: the same command line as ``keras-basis``."""

import sys

from keras_basis.cli import main

if __name__ == "__main__":
    sys.exit(main())
