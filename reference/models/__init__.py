"""Reference models: GAN (``gan``), VAE (``vae``) and the fully visible belief networks (``fvbn``)."""
from reference.models.fvbn import MADE, NADE, AutoregressiveModel, CausalConvNet, LogisticFVBN
from reference.models.gan import GAN_CONFIGS, Discriminator, GANConfig, Generator, make_gan
from reference.models.vae import VAE

__all__ = [
    "AutoregressiveModel", "CausalConvNet", "Discriminator", "GAN_CONFIGS", "GANConfig", "Generator",
    "LogisticFVBN", "MADE", "NADE", "VAE", "make_gan",
]
