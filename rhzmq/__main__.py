"""``python -m rhzmq`` is the ``rhzmq`` command."""

from .cli import main

main()
