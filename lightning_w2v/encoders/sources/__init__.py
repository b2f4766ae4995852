"""One module per encoder source; :mod:`lightning_w2v.encoders.registry` names them."""
