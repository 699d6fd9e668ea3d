"""Serving: a request (one user, one history, K candidates) scored with the history's work done once.

``ServingModel(model)`` wraps any model of this repository; ``Request`` and ``stack`` build its
inputs. The models' ``encode_history`` / ``score_candidates`` methods are made of ``parts``.
"""

from .model import ServingModel
from .parts import LOOPS, History
from .requests import Request, Requests, stack

__all__ = ["History", "LOOPS", "Request", "Requests", "ServingModel", "stack"]
