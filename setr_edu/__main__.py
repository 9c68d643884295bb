"""``python -m setr_edu ...``: see :mod:`setr_edu.cli`."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
