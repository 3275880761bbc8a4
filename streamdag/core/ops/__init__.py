"""The specs of the built-in ops, one module per family. Adding a built-in
op is one spec here, one runtime module, its tests and one facade method."""

from .decoders import SPECS as DECODERS
from .placement import SPECS as PLACEMENT
from .readers import SPECS as READERS
from .transforms import SPECS as TRANSFORMS

BUILTIN = (*TRANSFORMS, *READERS, *DECODERS, *PLACEMENT)
