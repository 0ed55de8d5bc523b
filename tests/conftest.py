import os

import torch

# One thread per test process: results are reproducible and xdist workers do not fight over cores.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
