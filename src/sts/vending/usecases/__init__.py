"""The vending use cases, one module each; `sts.vending.service.VendingService` is their facade,
and each takes the `sts.vending.context.ServiceContext` and the caller, never the facade.

sale (purchase), trial, lookup, free_units, reprint (and the stored answer of a purchase),
reversal, advice (confirmations and reversal advices), engineering (engineering tokens and
explicit key changes), keychange (a key change set alone), campaign (key change campaigns),
verify (decode a token and find its issue), deliveries (list, rejected, resend), reporting,
key_release (decoder keys for simulated and virtual meters) and simulator (the meter on the
screen).
"""
