"""odd17: the grant-management workflow engine of the Fonds ODD 17.

This package holds what sits around the domain: settings, the database session and unit of
work, the service functions that the CLI, the Prefect flows and the tests all call, and the CLI.
The domain itself lives in the top-level packages `models`, `rules` and `notifications`.
"""

__version__ = "0.1.0"
