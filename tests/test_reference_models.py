"""The reference models: the FVBN family's contract (normalisation, autoregressive structure, sampling
that agrees with log_prob), the VAE's bounds, the GAN networks' shapes."""
from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from reference import solution
from reference.models import GAN_CONFIGS, MADE, NADE, VAE, CausalConvNet, LogisticFVBN, make_gan

#: Every FVBN-family model, built small; each takes the data dimension.
FVBN_FAMILY = {
    "logistic": lambda d: LogisticFVBN(d),
    "nade": lambda d: NADE(d, hidden=8),
    "made": lambda d: MADE(d, hidden=16, num_layers=2),
    "wavenet": lambda d: CausalConvNet(d, channels=4, layers=3),
}


def redrawn(name: str, dim: int, seed: int = 0, std: float = 1.0, dtype=torch.float64) -> torch.nn.Module:
    """A model whose every parameter is re-drawn from N(0, std^2): the properties must hold for any values."""
    model = FVBN_FAMILY[name](dim).to(dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)
    return model


def all_binary(dim: int, dtype=torch.float64) -> torch.Tensor:
    """All 2^dim binary vectors, ``[2^dim, dim]``, x_1 most significant."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=dim)), dtype=dtype)


@pytest.mark.parametrize("name", FVBN_FAMILY)
@pytest.mark.parametrize("dim", [6, 10])
@pytest.mark.parametrize("seed", [0, 1])
def test_log_prob_normalises(name, dim, seed):
    model = redrawn(name, dim, seed)
    with torch.no_grad():
        lp = model.log_prob(all_binary(dim))
    assert lp.shape == (2 ** dim,)
    assert (lp <= 0).all()
    assert torch.logsumexp(lp, 0).item() == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("name", FVBN_FAMILY)
@pytest.mark.parametrize("seed", [0, 1])
def test_autoregressive_jacobian(name, seed):
    """d output_i / d x_j is exactly 0 for j >= i, also across examples of a batch."""
    dim, batch = 10, 3
    model = redrawn(name, dim, seed)
    x = torch.rand(batch, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(model, x)  # [B, D, B, D]
    allowed = torch.zeros(batch, dim, batch, dim, dtype=torch.bool)
    for b in range(batch):
        allowed[b, :, b, :] = torch.tril(torch.ones(dim, dim, dtype=torch.bool), diagonal=-1)
    assert (jac[~allowed] == 0).all()
    assert (jac[allowed] != 0).any()  # the test is not vacuous


@pytest.mark.parametrize("name", FVBN_FAMILY)
def test_outputs_ignore_later_inputs_exactly(name):
    """Changing x_i..x_D leaves outputs 1..i bitwise unchanged (not just up to rounding)."""
    dim = 9
    model = redrawn(name, dim, seed=3, dtype=torch.float32)
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 2, (16, dim), generator=g).float()
    with torch.no_grad():
        out = model(x)
        for i in range(dim):
            y = x.clone()
            y[:, i:] = torch.randint(0, 2, (16, dim - i), generator=g).float()
            assert torch.equal(model(y)[:, : i + 1], out[:, : i + 1])


@pytest.mark.parametrize("name", FVBN_FAMILY)
def test_masks_are_buffers_not_parameters(name):
    model = FVBN_FAMILY[name](5)
    assert not any("mask" in n for n, _ in model.named_parameters())
    if name in ("logistic", "made"):
        assert any("mask" in n for n, _ in model.named_buffers())


@pytest.mark.parametrize("name", FVBN_FAMILY)
def test_sampling_agrees_with_log_prob(name):
    """Chi-square goodness of fit of 20000 samples (d = 4) to exp(log_prob) over the 16 outcomes.

    Cells with an expected count below 5 are pooled. The level is alpha = 1e-3, so a correct sampler
    would fail for about 1 in 1000 seeds; the seed is fixed, so the test is deterministic.
    """
    dim, n = 4, 20_000
    model = redrawn(name, dim, seed=5, std=0.5, dtype=torch.float32)
    samples = model.sample(n, generator=torch.Generator().manual_seed(123))
    codes = (samples.long() * (2 ** torch.arange(dim - 1, -1, -1))).sum(1)  # x_1 most significant, as all_binary
    observed = np.bincount(codes.numpy(), minlength=2 ** dim).astype(np.float64)
    with torch.no_grad():
        probs = model.log_prob(all_binary(dim, torch.float32)).double().exp().numpy()
    probs /= probs.sum()  # float32 rounding only
    expected = n * probs
    small = expected < 5
    if small.any():
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-3


@pytest.mark.parametrize("name", FVBN_FAMILY)
def test_sample_shape_dtype_and_reproducible(name):
    model = redrawn(name, 7, seed=2, std=0.5, dtype=torch.float32)
    a = model.sample(50, generator=torch.Generator().manual_seed(9))
    b = model.sample(50, generator=torch.Generator().manual_seed(9))
    c = model.sample(50, generator=torch.Generator().manual_seed(10))
    assert a.shape == (50, 7) and a.dtype == torch.float32
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_logistic_fvbn_is_the_solution_fvbn():
    assert solution.FVBN is LogisticFVBN
    assert list(inspect.signature(LogisticFVBN).parameters) == ["dim"]
    assert LogisticFVBN(3)(torch.zeros(2, 3)).shape == (2, 3)


# ------------------------------------------------------------------------------------------------
# VAE and GAN
# ------------------------------------------------------------------------------------------------

def test_vae_shapes_and_bounds():
    torch.manual_seed(0)
    vae = VAE(data_dim=12, latent_dim=3, hidden=16)
    x = torch.randint(0, 2, (200, 12), generator=torch.Generator().manual_seed(0)).float()
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (200, 3)
    logits, mu2, _ = vae(x, torch.Generator().manual_seed(1))
    assert logits.shape == (200, 12) and torch.equal(mu, mu2)
    elbo = vae.elbo(x, torch.Generator().manual_seed(1))
    assert elbo.shape == (200,) and (elbo < 0).all()
    loss = vae.loss(x, torch.Generator().manual_seed(1))
    assert loss.dim() == 0 and loss.item() == pytest.approx(-elbo.mean().item())
    loss.backward()
    assert all(p.grad is not None for p in vae.parameters())

    iwae = vae.importance_weighted_bound(x, k=100, generator=torch.Generator().manual_seed(2))
    again = vae.importance_weighted_bound(x, k=100, generator=torch.Generator().manual_seed(2))
    assert iwae.shape == (200,) and torch.equal(iwae, again)
    # IWAE_100 >= E[ELBO]; over 200 examples the averages are far apart compared with their noise
    with torch.no_grad():
        elbo_mean = torch.stack([vae.elbo(x, torch.Generator().manual_seed(s)) for s in range(20)]).mean()
    assert iwae.mean() > elbo_mean
    # and it is a lower bound on log p(x) <= 0 for binary data
    assert (iwae < 0).all()
    assert vae.sample(5, torch.Generator().manual_seed(0)).shape == (5, 12)


@pytest.mark.parametrize("data", sorted(GAN_CONFIGS))
def test_gan_shapes(data):
    config = GAN_CONFIGS[data]
    gen, disc = make_gan(config)
    z = torch.randn(7, config.latent_dim)
    x = gen(z)
    assert x.shape == (7, config.data_dim)
    assert disc(x).shape == (7, 1)
    if config.sigmoid_output:
        assert ((x > 0) & (x < 1)).all()
