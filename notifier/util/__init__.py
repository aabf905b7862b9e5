"""Small helpers below everything else; they import nothing from the project but errors."""
