"""Runhouse's tests/test_resources/test_modules/exception_module.py (c874ee4).

Runhouse's ``import plotly`` works on the client (installed there) and fails on the cluster (not
in its env). Here the client and the local cluster share one Python, so the import is made to
fail only where the module is imported by a worker (``RHZMQ_WORKER`` is set in every worker):
the same "installed locally, missing on the cluster" situation. ``plotly`` is not installed at
all here, so the client side must not import it.
"""

import os

if "RHZMQ_WORKER" in os.environ:
    import plotly  # noqa

import rhzmq as rh


class ExceptionModule(rh.Module):
    def __init__(self):
        super().__init__()

    def test_fn(self):
        return None
