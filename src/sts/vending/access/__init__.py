"""Who may do what: the one access policy (`policy`: roles, permissions, vendor scope), API keys
(`api_keys`), operators' sign-in and sessions (`operators`), switch and terminal credentials
(`credentials`) and the database-held rate limits (`ratelimit`)."""
