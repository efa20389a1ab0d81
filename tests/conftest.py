import os

os.environ.setdefault("WANDB_MODE", "offline")
# Tiny models and several processes (Ray workers, CLIs) on 2 shared cores: one intra-op
# thread per process avoids oversubscription (measured 1.5-1.9 s vs 0.07 s per step under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")
