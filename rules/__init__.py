"""Pure policy: the application document's schema, eligibility rules and formatting helpers.

Nothing here performs I/O or knows about the database, Prefect or the CLI."""
