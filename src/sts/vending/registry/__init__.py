"""The registry and its administration: utilities, supply groups, keys, tariffs, customers,
meters, vendors and operators (`admin`, `keys`, `operators`), the back office's reads
(`catalogue`), and the bulk meter import (`importer`, `staging`, `files`)."""
