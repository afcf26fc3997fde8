"""imgrec: multi-label image recognition (PyTorch Lightning + Hydra)."""

import os

# Before anything loads torch's OpenMP runtime: its threads spin while they wait for each other, and
# when other processes keep the cores busy (a shared machine, the W&B service, a sweep beside it) the
# spinning thread holds the core that the thread it waits for needs. Measured under load on 2 cores:
# Lite0 extraction at 4 images/s spinning, 150-290 sleeping (bench/RESULTS.md). OMP_WAIT_POLICY=ACTIVE
# restores spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
