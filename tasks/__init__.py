"""Plain-Python work functions of samatlas: read, store, prompt, infer, score."""
