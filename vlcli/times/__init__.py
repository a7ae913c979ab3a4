"""Times in answers: reading them, the time axis the model saw, and mapping back to the source."""
