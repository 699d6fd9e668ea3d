"""The accelerated implementations behind dien_core's layers, and the plan that picks them.

- ``plan.py``: ``resolve`` a backend, device and dtype into a ``Plan`` (which form runs each piece);
- ``fused.py``: ``FusedRecurrence`` (hoisted projections, hand-written backward), its Python loops,
  and torch's own GRU kernel;
- ``cpp.py`` + ``csrc/``: the C++ kernels (recurrence loops, auxiliary loss, embedding lookup, the serving
  path's attention scores), built on first use;
- ``triton_loops.py``: the recurrence loops as Triton kernels (CUDA);
- ``aux_loss.py``, ``lookup.py``: the autograd Functions of the C++ auxiliary loss and of the lookup;
- ``attention.py``: the serving path's attention scores in one C++ call (forward only).

The layers in ``dien_core`` hold their plan's choice and call these; the readable per-step
recurrence (``dien_core/reference.py``) is the oracle they are tested against.
"""
