"""The packaged YAML configs (installed as ``lightning_w2v.conf``; see ``lightning_w2v.runner.configs``)."""
