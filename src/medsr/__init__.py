"""medsr: deep single-image super-resolution for medical images.

Submodules are imported on use (``medsr.models``, ``medsr.ops``, ``medsr.metrics``, ...) so
that one broken optional dependency never breaks ``import medsr``.
"""

__version__ = "0.1.0"
