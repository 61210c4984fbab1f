"""The NAS-Bench-201 space and its ground truth: op/edge orders and cell codes (``space``), the
benchmark tables (``benchmark``), metric names (``metrics``)."""
