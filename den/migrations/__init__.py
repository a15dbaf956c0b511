"""The registry's schema migrations (Alembic): ``env.py`` and ``versions/``, shipped in the
package so an installed server migrates its database itself (``den._db.migrate``)."""
