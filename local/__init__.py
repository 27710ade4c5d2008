"""The local runner and the genmusic CLI."""
