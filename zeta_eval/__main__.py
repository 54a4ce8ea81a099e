"""``python -m zeta_eval``: see :mod:`zeta_eval.cli`."""

import sys

from zeta_eval.cli import main

if __name__ == "__main__":
    sys.exit(main())
