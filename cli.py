"""python cli.py fit --config conf/pretrain/demo.yaml  (see README.md)."""
from lightning_w2v.cli import main

if __name__ == "__main__":
    main()
