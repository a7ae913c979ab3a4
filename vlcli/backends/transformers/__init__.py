"""The transformers backend: the model in this process, its inputs and reference positions."""
