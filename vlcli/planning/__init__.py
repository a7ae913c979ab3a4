"""Before any pixel: which frames at what size, how many tokens, windows, prompts, memory, context."""
