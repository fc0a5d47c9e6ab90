"""``python -m bench`` lists the benchmarks; run one with ``python -m bench.<name>``."""

import pkgutil
from pathlib import Path

for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
    if info.name.startswith("bench_"):
        print(f"python -m bench.{info.name}")
