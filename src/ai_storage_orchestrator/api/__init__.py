"""api layer (see docs/DESIGN.md): the aiohttp REST endpoint, its authentication and its OpenAPI document."""
