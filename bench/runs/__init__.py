"""Run folders and what works on them: the store (``runstore``), record readers (``records``),
supernets from checkpoints (``checkpoints``), one search (``experiment``), criteria applied
(``select``) and grids of runs (``sweep``)."""
