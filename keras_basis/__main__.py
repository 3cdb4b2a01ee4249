"""``python -m keras_basis``: the same command line as ``keras-basis``."""

import sys

if __name__ == "__main__":
    try:
        from keras_basis.cli import main
    except KeyboardInterrupt:
        print("keras-basis: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())
