"""Inference backends: the one seam between vlcli's core and the engine that runs the model.

The core plans, decodes and prepares frames and maps times; a backend turns one prepared prompt
into an answer and reports the time axis the model was really given.
"""
