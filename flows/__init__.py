"""Prefect flows: orchestration only. Every task calls a service function of ``odd17.services``
on a batch of applications (a task run costs milliseconds; thousands of applications must not
mean thousands of task runs)."""
