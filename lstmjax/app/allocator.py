"""The memory allocator ``lstmjax train`` runs under: glibc malloc on transparent huge pages.

Set once, at process start: :func:`reexec_with_malloc_tunables` restarts the command-line program
with ``GLIBC_TUNABLES`` set when the environment leaves it unset.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence

__all__ = ["MALLOC_TUNABLES", "reexec_with_malloc_tunables"]

MALLOC_TUNABLES = "glibc.malloc.hugetlb=1"
"""glibc malloc on transparent huge pages: the allocator setting ``lstmjax train`` runs under.

A training step's large temporaries are freed and allocated again on every step; with glibc's
default each such allocation is a fresh ``mmap`` whose pages fault in one by one (measured ~86k
page faults per step at batch 256 × 200 tokens, ~600 with this setting; training 1.3–1.8×
faster on a 2-core CPU; see ``tutorials/11_performance.md``)."""


def reexec_with_malloc_tunables(argv: Sequence[str] | None) -> None:
    """Restart ``lstmjax train`` under :data:`MALLOC_TUNABLES` when the environment leaves it unset.

    glibc reads ``GLIBC_TUNABLES`` once at process start, so the only way to apply it is to
    replace the process (``os.execve``: same PID, same arguments). Done only for the
    command-line program (``argv is None``), on Linux with glibc and transparent huge pages
    available, when ``GLIBC_TUNABLES`` is not set at all (a user's own setting is kept) and
    ``LSTMJAX_NO_REEXEC`` is not set (set it to ``1`` to opt out).

    Example:
      >>> reexec_with_malloc_tunables(["train"])  # called from Python (argv given): nothing to do
    """
    if argv is not None or "GLIBC_TUNABLES" in os.environ or os.environ.get("LSTMJAX_NO_REEXEC"):
        return
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            if "[never]" in f.read():
                return
    except OSError:
        return
    env = {**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES, "LSTMJAX_NO_REEXEC": "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "lstmjax", *sys.argv[1:]], env)
