"""The broken implementations are importable as the package ``broken`` (tests/conformance/broken)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
