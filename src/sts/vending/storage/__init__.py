"""Where the service keeps its records: the tables (`tables`, `tables_office`, `tables_clients`,
`tables_delivery`), the hand-written SQL of the hot paths (`statements`), the database engine
(`database`) and the Alembic migrations."""
