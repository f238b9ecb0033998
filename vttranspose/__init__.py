"""vttranspose (models land with their issue)."""

__all__: list[str] = []
