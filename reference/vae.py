"""The variational autoencoder (Kingma and Welling, 2014) in float64 from the oracle's components,
with hand-written gradients. The reparameterisation noise is an argument, never drawn, so every
framework computes on the same numbers.

    x (N, *input_shape) -> encoder -> h (N, 2 L);  mu = h[:, :L],  logvar = h[:, L:]
    z = mu + exp(logvar / 2) eps                                  (reparameterize; eps (N, L))
    out = decoder(z) (N, *input_shape): logits ('bernoulli') or means ('gaussian')

    loss = reconstruction + beta KL                              (the negative ELBO for beta = 1)
    KL   = 1/N sum_n sum_l -1/2 (1 + logvar - mu^2 - exp(logvar))
         = 1/N sum_n sum_l  1/2 (mu^2 + expm1(logvar) - logvar)
    reconstruction, 'bernoulli' = 1/N sum_n sum_pixels softplus(out) - out x   (BCE with logits;
                                  x in [0, 1])
                    'gaussian'  = 1/N sum_n sum_pixels 1/2 (out - x)^2

KL is the analytic KL(N(mu, diag exp(logvar)) || N(0, I)) (the paper's appendix B). Conventions:
every term is summed over pixels and latent dimensions and averaged over the batch (PyTorch's
VAE example sums over the batch too: N times these). The 'gaussian' reconstruction is the
negative log-likelihood of x under N(out, I) without its constant D/2 log(2 pi) (D pixels per
example); ``F.mse_loss(out, x, reduction='sum')`` is twice it per example. The decoder outputs
logits for 'bernoulli' (the probabilities are sigmoid(out)) and means for 'gaussian'.

Architectures (reference.network bodies without a loss, ReLU hidden activations):

- MLP, input_shape (F,), hidden (H1, ..., Hk): encoder dense H1, relu, ..., dense Hk, relu,
  dense 2 L; decoder dense Hk, relu, ..., dense H1, relu, dense F.
- conv, input_shape (C, H, W), hidden channels (C1, ..., Ck), H and W multiples of 2^k: encoder
  conv(C1, kernel 4, stride 2, padding 1), relu, ..., conv(Ck, 4, 2, 1), relu, flatten, dense 2 L;
  decoder dense Ck h w (h, w = H / 2^k, W / 2^k), reshape (Ck, h, w), conv_transpose(C(k-1),
  4, 2, 1), relu, ..., conv_transpose(C1, 4, 2, 1), relu, conv_transpose(C, 4, 2, 1).

Parameters: a flat list, the encoder's then the decoder's in reference.network's layout (dense w
(I, O), conv OIHW, conv_transpose (I, O, k, k)). The encoder's last dense layer (w (Hk, 2 L),
b (2 L,)) is a PyTorch model's ``fc_mu`` and ``fc_logvar`` pair side by side: w[:, :L] is
fc_mu.weight.T, w[:, L:] is fc_logvar.weight.T, b[:L] and b[L:] their biases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reference import losses as Lo
from reference import network
from reference._validate import arrays_of_shapes, as_float, positive
from reference.network import Architecture, Layer
from reference.optimizers import Optimizer

RECONSTRUCTIONS = ("bernoulli", "gaussian")


def _positive_ints(name: str, values) -> tuple[int, ...]:
    try:
        out = tuple(values)
    except TypeError as exc:
        raise ValueError(f"{name}: expected a tuple of positive ints, got {values!r}") from exc
    if not out or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1
                      for v in out):
        raise ValueError(f"{name}: expected a non-empty tuple of positive ints, got {values!r}")
    return tuple(int(v) for v in out)


def _kind(kind: str) -> None:
    if kind not in RECONSTRUCTIONS:
        raise ValueError(f"kind: expected one of {RECONSTRUCTIONS}, got {kind!r}")


@dataclass(frozen=True)
class VAE:
    """input_shape (F,) for an MLP VAE or (C, H, W) for a conv VAE; ``hidden``: the MLP's hidden
    widths or the conv encoder's channels, first layer first; ``latent`` L; ``reconstruction``
    one of RECONSTRUCTIONS; ``beta`` >= 0 the weight of the KL term."""

    input_shape: tuple[int, ...]
    hidden: tuple[int, ...]
    latent: int
    reconstruction: str = "bernoulli"
    beta: float = 1.0

    def __post_init__(self) -> None:
        shape = _positive_ints("input_shape", self.input_shape)
        if len(shape) not in (1, 3):
            raise ValueError(f"input_shape: expected (F,) or (C, H, W), got {self.input_shape!r}")
        hidden = _positive_ints("hidden", self.hidden)
        if len(shape) == 3 and any(s % 2 ** len(hidden) for s in shape[1:]):
            raise ValueError(f"input_shape: H and W must be multiples of 2^{len(hidden)} for "
                             f"{len(hidden)} stride-2 convolutions, got {shape}")
        latent = self.latent
        if isinstance(latent, bool) or not isinstance(latent, int | np.integer) or latent < 1:
            raise ValueError(f"latent: expected a positive int, got {latent!r}")
        if self.reconstruction not in RECONSTRUCTIONS:
            raise ValueError(f"reconstruction: expected one of {RECONSTRUCTIONS}, "
                             f"got {self.reconstruction!r}")
        beta = positive("beta", self.beta, allow_zero=True)
        for name, value in (("input_shape", shape), ("hidden", hidden), ("latent", int(latent)),
                            ("beta", beta)):
            object.__setattr__(self, name, value)

    @property
    def conv(self) -> bool:
        """Whether this is the conv VAE (input (C, H, W))."""
        return len(self.input_shape) == 3

    def encoder(self) -> Architecture:
        """The encoder body: x (N, *input_shape) -> (N, 2 L), mu then logvar."""
        if self.conv:
            layers = [layer for c in self.hidden for layer in (Layer("conv", c, 4, 2, 1),
                                                                Layer("relu"))]
            layers.append(Layer("flatten"))
        else:
            layers = [layer for w in self.hidden for layer in (Layer("dense", w), Layer("relu"))]
        layers.append(Layer("dense", 2 * self.latent))
        return Architecture("vae_encoder", self.input_shape, tuple(layers), loss=None)

    def decoder(self) -> Architecture:
        """The decoder body: z (N, L) -> (N, *input_shape), logits or means."""
        if self.conv:
            k = len(self.hidden)
            c, h, w = self.hidden[-1], self.input_shape[1] >> k, self.input_shape[2] >> k
            layers = [Layer("dense", c * h * w), Layer("reshape", shape=(c, h, w))]
            for ch in reversed(self.hidden[:-1]):
                layers += [Layer("conv_transpose", ch, 4, 2, 1), Layer("relu")]
            layers.append(Layer("conv_transpose", self.input_shape[0], 4, 2, 1))
        else:
            layers = [layer for wd in reversed(self.hidden)
                      for layer in (Layer("dense", wd), Layer("relu"))]
            layers.append(Layer("dense", self.input_shape[0]))
        return Architecture("vae_decoder", (self.latent,), tuple(layers), loss=None)

    def param_shapes(self) -> list[tuple[int, ...]]:
        """The shape of every parameter, in the order of the flat list."""
        return self.encoder().shapes()[0] + self.decoder().shapes()[0]


def init_params(model: VAE, seed: int = 0) -> list[np.ndarray]:
    """The encoder's Architecture.init(seed) parameters, then the decoder's init(seed + 1)."""
    return model.encoder().init(seed)[0] + model.decoder().init(seed + 1)[0]


# --------------------------------------------------------------------------- pieces

def _latents(mu, logvar) -> tuple[np.ndarray, np.ndarray]:
    m = as_float("mu", mu, 2)
    lv = as_float("logvar", logvar, 2)
    if lv.shape != m.shape:
        raise ValueError(f"logvar: expected the shape of mu {m.shape}, got {lv.shape}")
    if m.shape[0] < 1:
        raise ValueError(f"mu: expected at least one example, got shape {m.shape}")
    return m, lv


def _noise(eps, shape: tuple[int, ...]) -> np.ndarray:
    e = as_float("eps", eps, 2)
    if e.shape != shape:
        raise ValueError(f"eps: expected shape {shape} (N, L), got {e.shape}")
    return e


def _scalar(g) -> np.ndarray:
    g = as_float("g", g)
    if g.shape != ():
        raise ValueError(f"g: expected a scalar, got shape {g.shape}")
    return g


def reparameterize(mu: np.ndarray, logvar: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """z = mu + exp(logvar / 2) eps, all (N, L)."""
    m, lv = _latents(mu, logvar)
    return m + np.exp(lv / 2) * _noise(eps, m.shape)


def reparameterize_vjp(mu: np.ndarray, logvar: np.ndarray, eps: np.ndarray, g: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(d mu, d logvar) = (g, g eps exp(logvar / 2) / 2) for the cotangent g (N, L) of z."""
    m, lv = _latents(mu, logvar)
    e = _noise(eps, m.shape)
    g = as_float("g", g)
    if g.shape != m.shape:
        raise ValueError(f"g: expected the shape of z {m.shape}, got {g.shape}")
    return g, g * e * (np.exp(lv / 2) / 2)


def kl_divergence(mu: np.ndarray, logvar: np.ndarray) -> float:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) summed over the latent dimensions, averaged over
    the batch: 1/2 (mu^2 + expm1(logvar) - logvar), which is >= 0 in floating point too."""
    m, lv = _latents(mu, logvar)
    return float(0.5 * (m * m + (np.expm1(lv) - lv)).sum() / m.shape[0])


def kl_divergence_vjp(mu: np.ndarray, logvar: np.ndarray, g: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(d mu, d logvar) = (g mu / N, g expm1(logvar) / (2 N))."""
    m, lv = _latents(mu, logvar)
    g = _scalar(g) / m.shape[0]
    return g * m, g * (0.5 * np.expm1(lv))


def _reconstruction_inputs(logits_or_mean, x, kind: str) -> tuple[np.ndarray, np.ndarray]:
    _kind(kind)
    out = as_float("logits_or_mean", logits_or_mean)
    if out.ndim < 2 or out.shape[0] < 1:
        raise ValueError(f"logits_or_mean: expected (N, ...) with N >= 1 and a non-batch axis, "
                         f"got shape {out.shape}")
    x = as_float("x", x)
    if x.shape != out.shape:
        raise ValueError(f"x: expected the shape of logits_or_mean {out.shape}, got {x.shape}")
    if kind == "bernoulli" and not ((x >= 0) & (x <= 1)).all():
        raise ValueError(f"x: expected values in [0, 1] for the bernoulli reconstruction, got "
                         f"range [{x.min()}, {x.max()}]")
    return out, x


def reconstruction_loss(logits_or_mean: np.ndarray, x: np.ndarray, kind: str) -> float:
    """Summed over every non-batch axis, averaged over the batch: 'bernoulli' BCE with logits
    (the stable softplus form of reference.losses), 'gaussian' 1/2 the squared error."""
    out, x = _reconstruction_inputs(logits_or_mean, x, kind)
    if kind == "bernoulli":
        total = Lo.bce_with_logits(out, x, reduction="sum")
    else:
        total = 0.5 * Lo.mse_loss(out, x, reduction="sum")
    return float(total / out.shape[0])


def reconstruction_loss_vjp(logits_or_mean: np.ndarray, x: np.ndarray, g: float, kind: str
                            ) -> tuple[np.ndarray]:
    """(d logits_or_mean,) = g (sigmoid(out) - x) / N ('bernoulli') or g (out - x) / N."""
    out, x = _reconstruction_inputs(logits_or_mean, x, kind)
    gn = _scalar(g) / out.shape[0]
    if kind == "bernoulli":
        return Lo.bce_with_logits_vjp(out, x, gn, reduction="sum")
    return (gn * (out - x),)


# --------------------------------------------------------------------------- the model

def _params(model: VAE, params) -> list[np.ndarray]:
    """params checked against the model's shapes and cast to float64."""
    return arrays_of_shapes("params", params, model.param_shapes(), model)


def _inputs(model: VAE, params, x, eps) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """params, x (N, *input_shape) and eps (N, L) checked and cast to float64."""
    p = _params(model, params)
    x = as_float("x", x)
    if x.shape[1:] != model.input_shape or x.shape[0] < 1:
        raise ValueError(f"x: expected shape (N, {', '.join(map(str, model.input_shape))}) with "
                         f"N >= 1, got {x.shape}")
    return p, x, _noise(eps, (x.shape[0], model.latent))


def _run(model: VAE, p: list[np.ndarray], x: np.ndarray, eps: np.ndarray):
    """(out, mu, logvar, the encoder's tape, the decoder's tape) for checked inputs."""
    enc = model.encoder()
    n_enc = len(enc.shapes()[0])
    h, _, enc_tape = network.forward_tape(enc, p[:n_enc], [], x)
    mu, logvar = h[:, :model.latent], h[:, model.latent:]
    out, _, dec_tape = network.forward_tape(model.decoder(), p[n_enc:], [],
                                            reparameterize(mu, logvar, eps))
    return out, mu, logvar, enc_tape, dec_tape


def forward(model: VAE, params: Sequence[np.ndarray], x: np.ndarray, eps: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(decoder output (N, *input_shape), mu (N, L), logvar (N, L)) for noise eps (N, L)."""
    return _run(model, *_inputs(model, params, x, eps))[:3]


def loss(model: VAE, params: Sequence[np.ndarray], x: np.ndarray, eps: np.ndarray
         ) -> tuple[float, float, float]:
    """(reconstruction + beta KL, reconstruction, KL) for inputs x and noise eps (N, L)."""
    p, x, eps = _inputs(model, params, x, eps)
    out, mu, logvar, _, _ = _run(model, p, x, eps)
    rec = reconstruction_loss(out, x, model.reconstruction)
    kl = kl_divergence(mu, logvar)
    return rec + model.beta * kl, rec, kl


def loss_and_grads(model: VAE, params: Sequence[np.ndarray], x: np.ndarray, eps: np.ndarray
                   ) -> tuple[float, list[np.ndarray], tuple[float, float]]:
    """(loss, the gradient of every parameter, (reconstruction, KL)) by the chain rule over the
    oracle's VJPs: reconstruction -> decoder (backprop) -> reparameterisation -> plus beta times
    the KL's gradient at (mu, logvar) -> encoder (backprop). eps is not differentiated."""
    p, x, eps = _inputs(model, params, x, eps)
    out, mu, logvar, enc_tape, dec_tape = _run(model, p, x, eps)
    rec = reconstruction_loss(out, x, model.reconstruction)
    kl = kl_divergence(mu, logvar)
    (g_out,) = reconstruction_loss_vjp(out, x, np.float64(1.0), model.reconstruction)
    g_z, dec_grads = network.backprop(dec_tape, g_out)
    g_mu, g_logvar = reparameterize_vjp(mu, logvar, eps, g_z)
    k_mu, k_logvar = kl_divergence_vjp(mu, logvar, np.float64(model.beta))
    _, enc_grads = network.backprop(enc_tape, np.concatenate([g_mu + k_mu, g_logvar + k_logvar],
                                                             axis=1))
    return rec + model.beta * kl, enc_grads + dec_grads, (rec, kl)


def train(model: VAE, params: Sequence[np.ndarray], optimizer: Optimizer,
          batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[list[np.ndarray], list[float]]:
    """One optimizer step per (x, eps) batch, in order. Returns (final params, the loss of each
    batch before its step)."""
    p = _params(model, params)
    if isinstance(batches, np.ndarray) or not isinstance(batches, Sequence) or not batches:
        raise ValueError("batches: expected a non-empty list of (x, eps) pairs")
    opt_state = optimizer.init(p)
    history = []
    for j, batch in enumerate(batches):
        if isinstance(batch, np.ndarray) or not isinstance(batch, Sequence) or len(batch) != 2:
            raise ValueError(f"batches[{j}]: expected an (x, eps) pair")
        value, grads, _ = loss_and_grads(model, p, batch[0], batch[1])
        history.append(value)
        p, opt_state = optimizer.update(grads, opt_state, p)
    return p, history
