"""The snapshot database (``--db``): ``store`` (SQLite, schema, migrations), ``runs`` (a run's
state), ``recorder`` (a fetch run's side of it), ``changes`` (a result as a snapshot row, and
what changed between two), ``lookback`` (``history``, ``diff``, ``prune``)."""
