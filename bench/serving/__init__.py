"""``python -m bench latency``: what a ranking request costs on each serving path (docs/serving.md).

``latency`` (cells of per-request percentiles), ``impls`` (the paths side by side), ``export``
(AOTInductor and ONNX), ``microbatch`` and ``load`` (batching under open-loop arrivals),
``breakdown`` (where a request's time goes), ``report`` (tables and plots), ``cli``.
"""
