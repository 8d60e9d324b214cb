"""``python -m scoring.baselines``: train, predict and score the reference baselines."""

import sys

from scoring.baselines.cli import main

if __name__ == "__main__":
    sys.exit(main())
