"""Database models of the console (clusters, platforms and operations arrive with the launch form)."""
