"""Kernel-test setup: Triton's CPU interpreter when there is no GPU, and no tf32.

TRITON_INTERPRET must be set before Triton decorates the kernels; `kernels` imports its Triton
module lazily, at the first Triton launch, so setting it here (at collection) is early enough.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# fp32 references are compared at 1e-5: tf32 matmuls would be ~1e-3 off.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
