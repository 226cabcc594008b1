"""Sums `ncu --csv --metrics gpu__time_duration.sum` rows per kernel name (h100.mjs --layer-trace
runs three identical layer steps, so the sums divide by three): where a layer step's device time
goes, kernel by kernel. Usage: python3 trace_sum.py ncu.csv [steps]"""
import csv
import sys
from collections import defaultdict

steps = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
total = defaultdict(float)
count = defaultdict(int)
with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
for row in csv.DictReader(lines):
    if row.get("Metric Name") != "gpu__time_duration.sum":
        continue
    name = row["Kernel Name"].split("(")[0][:60]
    unit = row.get("Metric Unit", "nsecond")
    v = float(row["Metric Value"].replace(",", ""))
    scale = {"nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}.get(unit, 1e-6)
    total[name] += v * scale
    count[name] += 1
all_ms = sum(total.values()) / steps
print(f"kernels per step: {sum(count.values()) / steps:.0f}; device time per step: {all_ms:.3f} ms")
for name, ms in sorted(total.items(), key=lambda kv: -kv[1]):
    print(f"{ms / steps:8.3f} ms {count[name] / steps:5.1f}x  {name}")
