"""MIGRATION: task types not yet moved to ``rnnzoo/apps/<application>/``; this package goes
away when the last one has moved (look them up through :mod:`rnnzoo.apps`)."""

from rnnzoo.apps import known_task_types, runtime_class, task_class  # noqa: F401
