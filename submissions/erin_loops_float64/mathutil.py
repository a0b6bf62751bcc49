"""Small numerical helpers (Erin). Everything is done in float64."""
import torch


def to64(t):
    return t.to(torch.float64)


def log_sigmoid(t):
    """log(1 / (1 + e^-t)) without overflow: min(t, 0) - log(1 + e^-|t|)."""
    t = to64(t)
    return torch.clamp(t, max=0.0) - torch.log1p(torch.exp(-torch.abs(t)))


def log_one_minus_sigmoid(t):
    """log(1 - sigmoid(t)) = log sigmoid(-t)."""
    return log_sigmoid(-to64(t))


def row_sum(matrix):
    """Sum over the last dimension with an explicit loop over columns: [B, K] -> [B]."""
    total = matrix.new_zeros(matrix.shape[:-1])
    for k in range(matrix.shape[-1]):
        total = total + matrix[..., k]
    return total
