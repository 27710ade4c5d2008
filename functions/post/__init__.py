"""The finishing chain: mastering and encoding (watermark and credentials join it later)."""
