"""The runs of an evaluation in worker processes (``spotvlm eval --jobs N``).

Every (profile, draw, task item, mode) run replays the bag on its own simulated clock from its own seed,
so runs are independent: the workers take them in chunks of one (profile, draw, item) each (its modes
share a worker's cache of model calls) and give back the same runs, in the same order, as one process
would. Each worker builds its own backends from the config (for an OpenAI-compatible endpoint: one
request in flight per worker). Only ``model_calls`` differ: each worker's cache starts empty.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from .memo import MemoBackend, worker_backends
from .runner import EvalSetup, RunResult, _Progress, _run_one
from .tasks import TaskItem

Task = tuple[int, str, int, TaskItem, str]
"""(profile index, profile, draw, item, mode) of one run."""


def _calls(memo: MemoBackend) -> dict[str, int]:
    return {"calls": memo.hits + memo.misses, "computed": memo.misses}


def _worker(job: tuple[EvalSetup, list[Task]]) -> tuple[list[RunResult], dict[str, dict[str, int]]]:
    setup, tasks = job
    edge, cloud = worker_backends(setup.config)
    try:
        progress = _Progress(None)
        runs = [
            _run_one(setup, profile, index, draw, item, mode, edge, cloud, progress)
            for index, profile, draw, item, mode in tasks
        ]
        return runs, {"edge": _calls(edge), "cloud": _calls(cloud)}
    finally:
        cloud.close()
        edge.close()


def run_in_workers(
    setup: EvalSetup,
    tasks: Sequence[Task],
    jobs: int,
    on_run: Callable[[RunResult], None] | None = None,
) -> tuple[list[RunResult], dict[str, dict[str, int]]]:
    """Every task's run, in task order, by ``jobs`` worker processes; and the model calls they made."""
    chunks = [list(group) for _, group in itertools.groupby(tasks, key=lambda t: (t[0], t[2], t[3]))]
    runs: list[RunResult] = []
    calls = {"edge": {"calls": 0, "computed": 0}, "cloud": {"calls": 0, "computed": 0}}
    context = multiprocessing.get_context("spawn")  # torch and threads do not survive fork
    with ProcessPoolExecutor(max_workers=min(jobs, len(chunks)), mp_context=context) as pool:
        for chunk_runs, chunk_calls in pool.map(_worker, [(setup, chunk) for chunk in chunks]):
            for run in chunk_runs:
                runs.append(run)
                if on_run is not None:
                    on_run(run)
            for role, figures in chunk_calls.items():
                for key, value in figures.items():
                    calls[role][key] += value
    return runs, calls


def task_list(setup: EvalSetup) -> list[Task]:
    """The runs of ``setup`` in the order an evaluation lists them."""
    plan = setup.plan
    return [
        (index, profile, draw, item, mode)
        for index, profile in enumerate(plan.profiles)
        for draw in range(plan.draws)
        for item in setup.items
        for mode in plan.modes
    ]
