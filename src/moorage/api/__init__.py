"""HTTP layer: thin handlers that parse, call one service method and map the result."""
