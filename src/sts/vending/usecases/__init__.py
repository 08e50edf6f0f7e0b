"""The vending use cases, one module each; `sts.vending.service.ServiceContext` is their facade.

sale (purchase), trial, lookup, reprint (and the stored answer of a purchase), reversal,
engineering (engineering tokens and explicit key changes), keychange (a key change set alone,
for campaigns) and verify (decode a token and find its issue).
"""
