"""The snapshot database (``--db``): ``store`` (the tables, the shared queries, which backend),
``store_sqlite`` and ``store_postgres`` (the backends), ``runs`` (a run's state), ``recorder`` (a
fetch run's side of it), ``changes`` (a result as a snapshot row, and what changed between two),
``renewals`` (what became of a certificate), ``lookback`` (``history``, ``diff``, ``prune``),
``graded`` (``fetchheads audit --db``)."""
