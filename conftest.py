"""Repository-wide pytest setup.

The notebooks under ``book/`` are stored with their outputs, made without progress bars; nbval
re-executes them in kernels that inherit this process's environment and compares stderr too.
A progress bar prints a changing rate, so turn bars off here unless the caller chose otherwise
(``.ci/run`` sets the same variables explicitly).
"""

import os

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# The README's offline block sets relative paths (MYGPT_DATA_DIR=../shared/data), meant relative
# to the repository root, but nbval starts each chapter's kernel in book/. Importing mygpt.paths
# rewrites them as absolute paths here, once, and the kernels inherit those.
import mygpt.paths  # noqa: E402,F401
