"""Write the reference's own outputs for a kqv export, as an implementation in another language would: plain NumPy.

    python judge_numpy_script.py DIR RESULTS

reads DIR/manifest.json and, for each case, the float64 expected output (and lse) the export holds,
rounds it to the dtype of the output and writes RESULTS/<file> with ``np.save``. It imports nothing
of kqv: the files and the manifest are all it needs. bfloat16 is written as its 16-bit pattern.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """The bfloat16 bit patterns (uint16) of ``values``, rounded to nearest even (through float32)."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(values, dtype=np.float32))
    return np.where(nan, np.uint16(0x7FC0), rounded)


def in_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """``values`` as the output file of ``dtype`` stores them."""
    return bfloat16_bits(values) if dtype == "bfloat16" else values.astype(dtype)


def main(directory: Path, results: Path) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    results.mkdir(parents=True, exist_ok=True)
    for case in manifest["cases"]:
        for output in case["outputs"].values():
            expected = np.load(directory / output["expected"], allow_pickle=False)
            np.save(results / output["file"], in_dtype(expected, output["dtype"]), allow_pickle=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
