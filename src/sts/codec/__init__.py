"""Pure token mechanics: layouts, CRC, amounts, TID, digits, MeterPAN.  No I/O, no keys."""
