"""One self-contained HTML page per run, sweep or cross-validation folder (``imgrec dashboard PATH``):
runs table, metrics against settings, per-label F1, curves, error galleries, co-occurrence, run times,
and the label review that exports a ``data.corrections`` CSV."""
