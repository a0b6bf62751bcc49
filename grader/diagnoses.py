"""Diagnoses recognised by a rule rather than by recomputing a value (no reference needed).

The catalogue of mistakes that recompute a wrong value lives in ``grader.mistakes`` (it needs the
reference); these explanations are shared by the judges, which must not import the reference
(the student kit carries the judges but never the reference).
"""
from __future__ import annotations

GENERIC: dict[str, str] = {
    "non_finite_at_extremes": "The result is nan or inf at large |logits| (or log-variances): a log of 0 or an exp that "
                              "overflows. Use F.logsigmoid / softplus / BCE-with-logits, which never form sigmoid(x).",
    "inaccurate_at_extremes": "The result is finite but wrong at large |logits|: a clamp or an eps inside log() caps "
                              "log D near log(eps). Use F.logsigmoid / softplus, which are exact there.",
    "not_differentiable": "Gradients must flow from the result back to the inputs: stay in torch (no numpy, .item(), "
                          ".detach(), torch.no_grad(), or torch.tensor(...) rebuilt from values).",
    "batch_reduced": "The contract asks for one value per example, shape [B]; reduce over the last dimension only.",
    "modified_input": "An in-place operation (clamp_, squeeze_, +=, x[...] = ...) changed the caller's tensor; work on "
                      "a new tensor instead (e.g. x.clamp(...), x.squeeze(-1)).",
    "kind_not_validated": "An unknown `kind` must raise ValueError instead of silently returning a loss.",
    "hard_coded_batch_size": "The function works for one batch size but not another: is a batch size or a dimension "
                             "hard-coded?",
    "mask_includes_diagonal": "Output i changed when x_i itself changed: the autoregressive mask must be strictly "
                              "lower-triangular (output i sees x_1..x_(i-1) only).",
    "not_autoregressive": "Output i changed when a later input x_j (j >= i) changed: check the order of the mask "
                          "(strictly lower-triangular in natural order) and that every layer is masked.",
    "ignores_context": "No conditional depends on the earlier coordinates: logit_i must be computed from "
                       "x_1..x_(i-1) (an independent Bernoulli per pixel is not an FVBN).",
    "inplace_breaks_backward": "A tensor that backward needs was modified in place after it was used (an in-place "
                               "`fill_`, `+=`, `x[...] = ...` or `relu_` on a label or intermediate tensor): "
                               "build a new tensor instead (`torch.full_like`, `x + 1`, `torch.where`).",
    "ignores_parameters": "The model's outputs did not change when the grader re-drew its nn.Parameters: the "
                          "conditionals' logits must be computed from trainable parameters (and the inputs x_<i), "
                          "not from constants or buffers.",
    "log_prob_not_chain_rule": "log_prob(x) is not the sum over i of log p(x_i | x_<i) given by forward(x)'s logits.",
    "not_normalised": "exp(log_prob) does not sum to 1 over all binary vectors.",
    "sampler_ignores_generator": "sample(n, generator=g) must draw every random number from g, so that the same "
                                 "generator state gives the same samples.",
    "sampling_mismatch": "The samples do not follow exp(log_prob): sample x_1, then x_2 given x_1, and so on "
                         "(ancestral sampling), each with p = sigmoid(forward(x)[:, i]).",
}
