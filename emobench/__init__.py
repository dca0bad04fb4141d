"""emobench: benchmarking emotion recognition in face videos (VLMs vs vision-only models)."""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that busy-wait make torch's CPU kernels 10-30x slower whenever another
# process shares the cores (measured here: a 2-frame CNN forward 7 ms -> 260 ms). Passive
# waiting costs nothing measurable when the machine is idle. Set before torch loads; a
# value the user exported wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
