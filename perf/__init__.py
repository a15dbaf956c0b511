"""rhzmq's performance suite: ``python -m perf`` (or ``nox -s perf``)."""
