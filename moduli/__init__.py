"""moduli: geometric sparsification of recurrent neural networks."""
