"""Reports of an experiment: comparison tables, Kendall-tau reports, degeneration curves.

Data flows one way: run folders -> ``aggregate`` (tidy frames) -> ``table`` / ``tau`` /
``curves`` (pure summaries and figures) -> ``build`` (files and ``index.md``).
``reference`` computes rows from the ground truth, ``published`` holds the papers' rows,
``style`` the plot conventions.
"""
