"""What each command does: probe and budget over many inputs, and the run of `ask`."""
