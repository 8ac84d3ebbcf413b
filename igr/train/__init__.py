"""Coarse-to-fine training of IGR: stages vae, encoder, coarse, hqft (`python -m igr.train`)."""
