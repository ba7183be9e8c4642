"""Case readers for release formats beyond one SimpleITK file per channel (registered on import)."""
