"""``decode_images``: batched image decoding to torch tensors. ``node.py``
is the op's runtime (batch layout, resume state, error policy); each backend
(``dali.py``, ``nvjpeg.py``, ``pillow.py``) decodes lists of encoded images
behind one shape (``backend.py``) and resizes, crops, normalises and lays
them out as ``transform.py`` defines; ``choose.py`` picks one. Nothing here
is imported at ``import streamdag``: the op's spec is in ``core/ops``."""
