"""``python -m rhzmqd``: run the daemon (see :mod:`rhzmqd.daemon`)."""

from .daemon import main

main()
