"""Model presets, checkpoint loading/saving and embedding extension."""
