"""Weights & Biases logging that never prompts or hangs: online with credentials, else offline."""
from __future__ import annotations

import logging
import netrc
import os
import socket
from typing import Any

from pytorch_lightning.loggers import WandbLogger as _LightningWandbLogger

log = logging.getLogger(__name__)
WANDB_HOST = "api.wandb.ai"


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators(WANDB_HOST) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _reachable(host: str = WANDB_HOST, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_wandb_mode() -> tuple[str, str | None]:
    """The W&B mode to use, and why it is not 'online' (None when it is)."""
    explicit = os.environ.get("WANDB_MODE")
    if explicit:
        return explicit, None if explicit == "online" else f"WANDB_MODE={explicit}"
    if not _has_credentials():
        return "offline", "no W&B credentials (run `wandb login` or set WANDB_API_KEY)"
    if not _reachable():
        return "offline", f"{WANDB_HOST} is unreachable"
    return "online", None


class WandbLogger(_LightningWandbLogger):
    """Lightning's WandbLogger, offline by itself when there are no credentials or network.

    ``WANDB_MODE`` wins when set (``disabled`` turns W&B off). ``log_model`` is off by
    default so checkpoints do not fill artifact storage. Offline runs say how to upload.
    """

    def __init__(self, *args: Any, log_model: bool | str = False, **kwargs: Any) -> None:
        mode, reason = resolve_wandb_mode()
        if kwargs.get("mode") is None:  # a config passes every wandb.init argument, unset ones as None
            kwargs["mode"] = mode
        os.environ.setdefault("WANDB_SILENT", "true")
        super().__init__(*args, log_model=log_model, **kwargs)
        self._offline_reason = reason if mode == "offline" else None

    def keep_files_under(self, folder: str | os.PathLike) -> None:
        """Put the W&B run's files in ``folder`` when no ``save_dir`` was given (never ./wandb or /tmp)."""
        if self._experiment is None and not self._save_dir:
            self._save_dir = os.fspath(folder)
            self._wandb_init["dir"] = self._save_dir

    def resume_run(self, run_id: str) -> None:
        """Continue W&B run ``run_id`` (must be called before the run starts)."""
        if self._experiment is not None:
            raise RuntimeError("the W&B run has already started; resume it before training begins")
        self._id = run_id
        self._wandb_init.update(id=run_id, resume="allow")

    @property
    def experiment(self):
        run = super().experiment
        if self._offline_reason and run is not None and getattr(run, "dir", None):
            run_dir = os.path.dirname(run.dir.rstrip("/"))
            print(f"W&B is logging offline ({self._offline_reason}). Upload later with:\n"
                  f"  wandb sync {run_dir}", flush=True)
            self._offline_reason = None
        return run


def start_wandb_run(project: str | None, job_type: str, config: dict[str, Any] | None = None,
                    name: str | None = None, entity: str | None = None, save_dir: str | os.PathLike = "."):
    """A plain W&B run for the commands outside Lightning (analyses, results); None if no project.

    Same mode rules as :class:`WandbLogger`: online with credentials and network, else
    offline with the ``wandb sync`` hint; ``WANDB_MODE=disabled`` turns it off.
    """
    if not project:
        return None
    import wandb  # slow to import; only W&B runs need it

    mode, reason = resolve_wandb_mode()
    os.makedirs(save_dir, exist_ok=True)
    run = wandb.init(project=project, entity=entity, name=name, job_type=job_type, config=config or {},
                     mode=mode, dir=str(save_dir))
    if mode == "offline" and getattr(run, "dir", None):
        print(f"W&B is logging offline ({reason}). Upload later with:\n"
              f"  wandb sync {os.path.dirname(run.dir.rstrip('/'))}", flush=True)
    return run
