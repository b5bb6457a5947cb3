"""Domain logic. Services take a Database and a StorageDriver, never an HTTP request."""
