"""``python -m lightning_w2v ...``: the lightning-w2v command (see :mod:`lightning_w2v.commands`)."""
import sys

from .commands import main

if __name__ == "__main__":
    sys.exit(main())
