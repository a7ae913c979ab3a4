"""Media files: finding and probing them, and decoding the frames a plan names, exactly."""
