"""The vending service: every business rule, once.  It imports no face and no web framework.

- `service.VendingService`: the facade every face calls, one method per use case;
- `usecases/`: the use cases, each over the `context.ServiceContext` and a caller;
- `access/`: the one access policy, API keys, operators, switch credentials, rate limits;
- `keys/`: the security modules; `registry/`: the registry, its administration and imports;
- `storage/`: tables, hot-path SQL, the database and migrations;
- `outbox`: the transactional outbox of token deliveries (the carriers are `sts.delivery`);
- the shared rules beside them: `tariff`, `tariff_history` (the version a sale prices on),
  `currency`, `receipts`, `clock`, `meters`, `issue`,
  `ledger`, `vendor`, `floats`, `advices`, `messages`, `audit`, `reports`, `faults`,
  `testtokens`, `config`.
"""
