"""Test-wide settings: no hub access, quiet tokenizers, and Triton's CPU interpreter where there is no GPU.

TRITON_INTERPRET must be set before anything imports Triton (TRL and transformers import it early),
so it is decided here from the driver's presence rather than from torch.
"""

import os
import shutil

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
if shutil.which("nvidia-smi") is None:
    os.environ.setdefault("TRITON_INTERPRET", "1")
