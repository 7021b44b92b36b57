"""``lrkit largest-batch``: the largest batch of a task's model that fits in memory, and the
learning rate it implies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from .._files import check_writable_dir
from ._common import console, fail, fmt, interrupted, progress_bar
from .options import TaskOption

if TYPE_CHECKING:
    from ..finder import BatchSizeResult
    from ..tasks import Task


@contextmanager
def _size_progress(description: str) -> Iterator[Callable[[int, int | None], None]]:
    with progress_bar() as bar:
        task = bar.add_task(description, total=None, info="")

        def update(size: int, peak: int | None) -> None:
            what = "out of memory" if peak is None else f"{peak / 2**20:.1f} MiB"
            bar.update(task, advance=1, info=f"batch {size}: {what}")

        yield update


def largest_batch_cmd(
    task: TaskOption = "mnist1d-cnn",
    memory_limit: Annotated[
        str | None,
        typer.Option(
            help="Stop at the first size whose peak passes this, e.g. 2GiB or 500MB "
            "(required on the CPU; on CUDA the search also stops at out of memory)."
        ),
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(
            help="Optimizer whose state counts (default: the task's); 'none' measures the "
            "forward and backward only."
        ),
    ] = None,
    start: Annotated[
        int | None, typer.Option(help="First batch size (default: the task's).")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Largest batch size to try.")] = 65536,
    device: Annotated[str, typer.Option(help="Where to measure: cpu or cuda.")] = "cpu",
    seed: Annotated[int, typer.Option(help="Model seed.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for the result (JSON).")] = Path("lrkit-out"),
) -> None:
    """Double the batch of a task's model, one real training step per size, until it runs
    out of memory or passes --memory-limit (or the next size would be larger than the task's
    training data); print the largest size that fits and the learning rate it implies
    (linear and square-root scaling), as advice.

    Nothing is trained or changed; the result is written to OUT/largest_batch.json.
    """
    from ..tasks import get_task

    try:
        check_writable_dir(out)
        _check_device(device, memory_limit)
        t = get_task(task)
        name = (optimizer or t.optimizer).lower()
        result = measure(t, name, memory_limit, start, max_batch, device, seed)
    except (ValueError, TypeError) as err:
        raise fail(err) from err
    except KeyboardInterrupt:
        raise interrupted("the model and optimizer were restored; nothing was written") from None
    out.mkdir(parents=True, exist_ok=True)
    path = out / "largest_batch.json"
    result.to_json(path)
    print_largest_batch(t, result, name, memory_limit)
    console.print(f"wrote {path}")


def _check_device(device: str, memory_limit: str | None) -> None:
    import torch

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if device == "cpu" and memory_limit is None:
        raise ValueError(
            "on the CPU give --memory-limit (e.g. 2GiB): the CPU has no out-of-memory "
            "error to stop at before the system swaps or kills the process"
        )
    if device != "cpu" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: there is no CUDA device here")


def measure(
    t: Task,
    optimizer: str,
    memory_limit: str | None,
    start: int | None,
    max_batch: int,
    device: str,
    seed: int,
) -> BatchSizeResult:
    """:func:`lrkit.finder.largest_batch` on task ``t``'s model (seeded) on ``device``, with the
    named optimizer (``"none"``: without one), under a progress bar."""
    from ..finder.batch_size import largest_batch
    from ..train.optimizers import build_optimizer

    model = t.make_model(seed).to(device)
    opt = None
    if optimizer != "none":
        opt = build_optimizer(optimizer, model.parameters(), lr=t.lr_for(optimizer))
    train, _ = t.loaders(seed=seed)
    example = next(iter(train))
    with _size_progress(f"largest batch of {t.name} on {device}") as progress:
        return largest_batch(
            model,
            example,
            loss_fn=t.loss_fn,
            optimizer=opt,
            memory_limit=memory_limit,
            start=start,
            max_batch=max_batch,
            data_size=len(t.train_data[0]),
            device=device,
            progress=progress,
        )


def print_largest_batch(
    t: Task, result: BatchSizeResult, optimizer: str, memory_limit: str | None
) -> None:
    """Each size's peak memory as a table, the largest that fits and the LR advice."""
    table = Table(title=f"one training step of {t.name} per batch size ({result.device})")
    for col in ("batch", "peak memory (MiB)", "fits"):
        table.add_column(col, justify="right")
    for size, peak, ok in zip(result.sizes, result.peaks, result.fits, strict=True):
        mib = "out of memory" if peak is None else fmt(peak / 2**20, 4)
        table.add_row(str(size), mib, "yes" if ok else "no")
    console.print(table)
    limit = "" if result.memory_limit is None else f", limit {memory_limit}"
    stop = result.stop_reason.replace("_", " ")
    if result.stop_reason == "data_size":
        data_size = len(t.train_data[0])
        stop = f"the next size would be larger than the data, {data_size} training examples"
    console.print(
        f"largest batch that fits: [bold]{result.largest}[/bold] (stopped: {stop}{limit})",
        highlight=False,
    )
    lr_of = optimizer if optimizer != "none" else t.optimizer
    advice = result.advice(t.batch_size, t.lr_for(lr_of))
    console.print(f"advice: {advice.text}", highlight=False)
