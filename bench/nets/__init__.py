"""Networks and the forwards that measure them: shared ops and cells (``cells``), the supernet
(``supernet``) and its naive reference (``naive``), relaxations, EnTranNAS's supernet, evaluation,
the alpha-Hessian and the stand-alone cell's cost."""
