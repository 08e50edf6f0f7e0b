"""Sandbox stand-ins, for the demo (`sts serve --demo`) and the tests only: a Daraja, an MTN
MoMo and an SMS gateway that answer on loopback as the real services' documentation describes,
so a person can pay from `/buy` and watch the token arrive with no account anywhere.  They are
never a provider: the server starts them only with `--demo`, and only on 127.0.0.1.

- `daraja.Daraja`: OAuth, C2B register URL, M-Pesa Express (the callback after a delay), STK
  query; what the customer does with a prompt is scripted (`outcome`);
- `momo.MomoStandIn`: MTN MoMo Collections (token, RequestToPay, callback, status);
- `sms.SmsInbox`: an HTTP SMS gateway that keeps every message and shows them as a phone's
  inbox page (the demo's "phone").
"""
