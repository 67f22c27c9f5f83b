"""The serving process stays light: importing the API loads no training code (DESIGN.md)."""

from __future__ import annotations

import json
import subprocess
import sys

TRAINING = ("implicit", "lightfm", "mlflow", "optuna", "pandas", "polars", "matplotlib", "recsys")


def test_the_api_imports_no_training_code() -> None:
    code = (
        "import json, sys; import serving.api.main; "
        f"print(json.dumps(sorted(m for m in {TRAINING!r} if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
