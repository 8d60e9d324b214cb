"""The MedMod task suite, the on-disk benchmark format, its synthetic generator and the
MIMIC importer. Pure Python: no Django, no torch."""

from benchmark_data.benchmark import (
    Benchmark,
    BenchmarkError,
    BenchmarkWriter,
    ScenarioSets,
    export_public,
    open_benchmark,
)
from benchmark_data.tasks import SCENARIOS, SPLITS, TASK_SLUGS, TASKS, Task, get_task

__all__ = [
    "Benchmark",
    "BenchmarkError",
    "BenchmarkWriter",
    "SCENARIOS",
    "SPLITS",
    "ScenarioSets",
    "TASKS",
    "TASK_SLUGS",
    "Task",
    "export_public",
    "get_task",
    "open_benchmark",
]

__version__ = "0.1.0"
