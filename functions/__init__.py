"""Plain-Python job bodies shared by Modal and the local runner."""
