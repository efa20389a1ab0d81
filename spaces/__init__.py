"""spaces package."""
