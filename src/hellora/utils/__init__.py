"""Small shared helpers: atomic file writes, run metadata, errors shown to users."""
