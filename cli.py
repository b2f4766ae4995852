"""``python cli.py fit --config conf/pretrain/demo.yaml``: the same as ``lightning-w2v fit ...`` (README)."""
from lightning_w2v.commands import main

if __name__ == "__main__":
    raise SystemExit(main())
