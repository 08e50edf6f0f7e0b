"""The mobile-money face: M-Pesa (Daraja) paybill callbacks, M-Pesa Express (STK push)
callbacks and the USSD menu, on paths that never name the provider (Daraja refuses callback
URLs that do):

POST /pay/c2b/validation     may this payment go through? (before the money moves)
POST /pay/c2b/confirmation   the money moved: record it, sell once, SMS the token
POST /pay/stk/callback       the answer to a prompt we made: paid (sell) or not
POST /ussd                   Africa's Talking USSD: check a meter, buy, resend my token,
                             report a fault
GET  /buy                    the self-service page (`buy`): pay from a phone, my tokens

Every callback is accepted only from the configured networks (`config`), checked field by
field (`mpesa`), turned into the channel's `Caller` and handed to one service method; the
rules (a row first, one sale, exceptions) are the service's (`sts.vending.usecases.payments`).
"""

from __future__ import annotations

from sts.payments.routes import mount

__all__ = ["mount"]
