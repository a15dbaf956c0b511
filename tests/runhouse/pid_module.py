"""The ``pid_module.py`` that docs/tutorials/api-modules.rst (2214b02) writes with ``%%writefile``
("Constructing your own rh.Module Class"), unchanged but for the import."""

import os

import rhzmq as rh


class PIDModule(rh.Module):
    def __init__(self, a: int = 0):
        super().__init__()
        self.a = a

    @property
    def data(self):
        if not hasattr(self, "_data"):
            self._data = load_dataset()  # noqa: F821 - as in the tutorial (never read)
        return self._data

    def getpid(self):
        return os.getpid() + self.a
