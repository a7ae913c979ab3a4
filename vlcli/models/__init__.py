"""Model families (everything that differs between them) and finding a model's files."""
