"""vae_utils: the small package shared by the VAE notebooks.

``data`` (datasets, binarisation, label splits), ``models`` (sampling layer, encoders, decoders, the
VAE), ``losses`` (log-likelihoods, KL), ``evaluate`` (ELBO, IWAE estimate, bits/dim), ``latent``
(interpolation and traversal in latent space), ``plotting`` (figures), ``repro`` (seeding, metrics and
figures of a run) and ``run`` (the papermill runner).
"""

__version__ = "0.1.0"
