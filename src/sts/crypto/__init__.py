"""Ciphers and key derivation: EA07 STA, EA11 MISTY1, EA09 DES, DKGA02/04."""
