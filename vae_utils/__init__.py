"""vae_utils: the small package shared by the VAE notebooks.

``data`` (datasets, binarisation, label splits, batches), ``models`` (sampling layer, Gaussian head,
encoders, decoders, the VAE), ``likelihoods`` (the decoders' likelihoods, one table for the VAE and M2),
``m2`` (Kingma et al.'s semi-supervised M2: its networks and objective), ``losses`` (log-likelihoods, KL),
``pixel_mixture`` (PixelCNN++'s mixture of discretised logistics for RGB pixels), ``training`` (compile and
fit with the cosine Adam, a stop on divergence, checkpoints), ``evaluate`` (ELBO, IWAE estimate, bits/dim),
``latent`` (interpolation and traversal in latent space), ``plotting`` (figures), ``repro`` (seeding,
metrics, figures and checkpoints of a run), ``checkpoints`` and ``identity`` (a training's checkpoints, and
the key of its settings and code they are kept under), ``atomic`` (files written whole or not at all),
``explorer`` (a decoder exported for the latent explorer), ``colab`` (the notebooks' Colab badge and set-up
cell), ``run`` (the papermill runner), ``publish`` (an executed notebook's outputs checked and published
with its metrics and figures as one transaction), ``protocol`` (the semi-supervised MNIST protocol: its
split, a validated SVM, the summary over label splits), ``compare`` (the semi-supervised table), ``checks``
(argument checks) and ``home`` (where runs read and write: the checkout, or the working directory of an
installed package).
"""

__version__ = "0.1.0"
