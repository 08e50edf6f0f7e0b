"""sts: an open, standards-conformant STS (IEC 62055-41) prepayment metering platform.

Layers, each importing only those below it: `sts.codec` (pure token mechanics),
`sts.crypto` (STA, MISTY1, DES, DKGA), `sts.engine` (tokens for a meter and request; decode),
`sts.meter` (virtual payment meter), `sts.vending` (vending server), `sts.cli` (faces).
"""

__version__ = "0.1.0"
