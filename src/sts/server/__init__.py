"""The composition root: the ASGI app `sts serve` runs (`app.create_app`), the /v1 REST routes
(`v1`, `deliveries`), their dependencies and schemas.  It opens the service and mounts every
face on it; nothing below it imports it."""
