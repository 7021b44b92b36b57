"""Options that several commands share, as ``Annotated`` types for their signatures, and the
settings of a range test that they make up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

TaskOption = Annotated[
    str, typer.Option(help="Built-in task (see `lrkit tasks`) or module:function.")
]
OptimizerOption = Annotated[str | None, typer.Option(help="Optimizer name (default: the task's).")]
BatchSizeOption = Annotated[int | None, typer.Option(help="Batch size (default: the task's).")]
SeedOption = Annotated[int, typer.Option(help="Model and data-order seed.")]
StartLrOption = Annotated[float, typer.Option(help="First LR of the sweep.")]
EndLrOption = Annotated[float, typer.Option(help="Last LR of the sweep.")]
OutOption = Annotated[Path, typer.Option(help="Folder for the plot (PNG) and the result (JSON).")]

BackendOption = Annotated[
    str,
    typer.Option(
        help="Where the trials (and a search's probes) run: local (a process pool) or ray "
        '(Ray tasks on a cluster; pip install "lrkit\\[ray]").'
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        help="With --backend ray: the cluster's address (HOST:PORT, as `ray start --head` "
        "prints it); default: $RAY_ADDRESS, else a Ray instance started on this machine."
    ),
]
TrialCpusOption = Annotated[
    float | None, typer.Option(help="With --backend ray: CPUs per trial (default 1).")
]
TrialGpusOption = Annotated[
    float | None, typer.Option(help="With --backend ray: GPUs per trial (default 0).")
]


def backend_args(
    backend: str, address: str | None, trial_cpus: float | None, trial_gpus: float | None
) -> dict[str, Any]:
    """The library's ``backend``, ``address`` and ``resources`` arguments from the options (the
    library checks them)."""
    resources: dict[str, float] | None = None
    if trial_cpus is not None or trial_gpus is not None:
        resources = {}
        if trial_cpus is not None:
            resources["num_cpus"] = trial_cpus
        if trial_gpus is not None:
            resources["num_gpus"] = trial_gpus
    return {"backend": backend, "address": address, "resources": resources}


@dataclass(frozen=True)
class Sweep:
    """The settings of the range tests of ``lrkit find`` and ``lrkit test``, as the options give
    them (the library checks them)."""

    optimizer: str | None
    seed: int
    batch_size: int | None
    steps: int
    weight_decay: float
    start_lr: float
    end_lr: float

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`lrkit.finder.task.find_lr` and
        :func:`~lrkit.finder.task.hyper_test_task` that the settings give, all but
        ``optimizer``."""
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "steps": self.steps,
            "weight_decay": self.weight_decay,
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
        }
