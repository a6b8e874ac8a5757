"""Compare generators on a prompt suite: ``agiqa bench ROOT --prompts SUITE --out DIR``.

``suites`` (the prompts, shipped ones included), ``layout`` (which image is whose and of which prompt), ``stats``
(means with bootstrap intervals, per group, ranking, same-prompt win rates), ``output`` (markdown, JSON, chart)
and ``run`` (``run_bench``: score through the public scoring API, then compare).
"""
