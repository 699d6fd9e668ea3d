"""Past one machine: suite cells as Ray tasks (``run --ray``), one cell's training data-parallel under
torchrun (``DistributedDataParallel``), and what the embedding tables' dense gradients cost there.

Nothing here imports Ray at module level: it is an optional extra (``pip install -e ".[ray]"``).
See ``docs/distributed.md``.
"""
