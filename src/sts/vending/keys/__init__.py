"""Vending keys and the security modules that alone may use them: the interface
(`security_module`), the software module under a KEK (`software`), PKCS#11 (`pkcs11`), choosing
one from the configuration (`opening`) and the key ceremony (`ceremony`)."""
