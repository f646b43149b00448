"""RS5M build system."""
