"""The worker-side service is pure Python: importing it loads no Django, DRF or Celery."""

from __future__ import annotations

import subprocess
import sys

from tests.leaderboard.containers.conftest import REPO

CODE = """
import sys
import leaderboard.containers, leaderboard.containers.__main__
bad = sorted(n for n in sys.modules if n.split(".")[0] in {"django", "rest_framework", "celery"})
print(",".join(bad))
"""


def test_containers_package_imports_no_django():
    out = subprocess.run(
        [sys.executable, "-c", CODE], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""
