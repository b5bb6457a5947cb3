"""Database layer: SQLAlchemy 2 models, the engine, and the query classes."""
