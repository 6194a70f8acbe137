"""FV Studio core: function vectors and steering with nnsight, free of any UI code.

Import the submodules you need (``core.models``, ``core.attribution``, ...); importing
``core`` itself loads nothing heavy.
"""

__version__ = "0.1.0"
