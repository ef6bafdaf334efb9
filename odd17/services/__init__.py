"""Service functions: the one place where use cases are carried out. The CLI, the Prefect flows
and the tests all call these, each inside a unit of work."""
