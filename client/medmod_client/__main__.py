"""``python -m medmod_client``: the same as the ``medmod`` command."""

import sys

from medmod_client.cli import main

sys.exit(main())
