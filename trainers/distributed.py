"""Several processes (`torchrun`, `accelerate launch`): who writes, and how work is split and shared.

`python -m trainers.orbit` runs the same recipe in every process. The rules, in one place:

- Only the main process writes the run's files: metrics, TensorBoard, plots, the imitation model, the
  final model's config and the closing table (transformers already saves checkpoints and the final
  weights from the main process only).
- Imitation runs once, on the main process; the others wait and load its saved model.
- Held-out evaluation is sharded: process r plays tasks r, r + P, r + 2P, ...; the rows are gathered
  back into task order on every process. Trials sample from per-trial streams
  (`agents.token_loop.TokenAgent.play_batch`), so the rows equal a single process's.
- GRPO groups are never split: every process plays whole groups (`trainers.orbit_trainer.grpo_args`
  requires `train.tasks_per_step` to be a multiple of the process count).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence, TypeVar

__all__ = ["is_distributed", "rank", "is_main_process", "barrier", "sharded"]

Item = TypeVar("Item")


def is_distributed() -> bool:
    """Whether this process is one of several (a launcher set WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _state() -> Any:
    import torch
    from accelerate import PartialState

    # Joins the launcher's process group once (NCCL on GPUs; on CPUs accelerate needs `cpu=True` for gloo).
    return PartialState(cpu=not torch.cuda.is_available())


def rank() -> int:
    """This process's index (0 when launched plainly)."""
    return _state().process_index if is_distributed() else 0


def is_main_process() -> bool:
    """Whether this process writes the run's files."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (a no-op in a single process)."""
    if is_distributed():
        _state().wait_for_everyone()


def sharded(items: Sequence[Item], play: Callable[[Sequence[Item]], list]) -> list:
    """`play(items)` split over the processes: each plays its share, all get every result in item order.

    Args:
        items: the work (e.g. held-out tasks).
        play: maps a sequence of items to one result per item.

    Returns:
        One result per item, in the order of `items`, on every process.
    """
    if not is_distributed():
        return play(items)
    from accelerate.utils import gather_object

    state = _state()
    processes, index = state.num_processes, state.process_index
    mine = play(items[index::processes])
    gathered = gather_object([mine])  # one list per process, in process order
    results: list = [None] * len(items)
    for process, rows in enumerate(gathered):
        results[process::processes] = rows
    return results
