"""lightning_w2v."""
