"""Evaluation: running networks on whole images (``inference``), the one scoring path that
``medsr.train`` and ``medsr.evaluate`` share (``scoring``), results tables, figures and the
end-of-run report. No Lightning here: evaluation and prediction start fast."""
