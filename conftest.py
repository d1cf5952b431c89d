"""Repository-wide pytest setup.

The notebooks under ``book/`` are stored with their outputs, made without progress bars; nbval
re-executes them in kernels that inherit this process's environment and compares stderr too.
A progress bar prints a changing rate, so turn bars off here unless the caller chose otherwise
(``.ci/run`` sets the same variables explicitly).
"""

import os

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
