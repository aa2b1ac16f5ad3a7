"""Management commands of the platforms app."""
