"""The adapters' known divergences are data (backends/divergences/*.toml): they load into the
same KnownDivergence entries, matching the same tests, components and dtypes, and the package
ships the files."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from backends.base import KnownDivergence
from backends.divergences import from_toml, load
from backends.divergences.predicates import PREDICATES
from tests.optional import need

ROOT = Path(__file__).resolve().parent.parent
F64_F32_BF16 = ("float64", "float32", "bfloat16")

#: (test, component, dtypes, upstream) of every entry, in order, as the adapters declared them
#: in code before the prose moved to data
EXPECTED = {
    "torch": [("test_forward", "gelu", None, "pytorch#187806"),
              ("test_vjp", "gelu", None, "pytorch#187806"),
              ("test_forward_tail", "gelu", None, "pytorch#187806"),
              ("test_forward", "bce_with_logits", None, "pytorch#195529"),
              ("test_forward_tail", "bce_with_logits", None, "pytorch#195529"),
              ("test_bce_label_symmetry", "bce_with_logits", ("float32", "float64"),
               "pytorch#195529"),
              ("test_vjp", "conv1d", ("bfloat16",), None),
              ("test_vjp", "conv2d", ("bfloat16",), None),
              ("test_vjp", "conv_transpose2d", ("bfloat16",), "pytorch#169688"),
              ("test_forward", "conv2d", ("bfloat16",), "pytorch#169688"),
              ("test_network_forward", "mlp", None, "pytorch#187806"),
              ("test_network_gradients", "mlp", None, "pytorch#187806"),
              ("test_network_training", "mlp", None, "pytorch#187806"),
              ("test_forward", "cross_entropy", ("float16",), None),
              ("test_diffusion_schedule", "diffusion_schedule", ("float64",), "diffusers#3056"),
              ("test_denoiser_loss_and_grads", "denoiser", ("float64",),
               "diffusers 0.42.1 src/diffusers/models/embeddings.py lines 58-63"),
              ("test_denoiser_training", "denoiser", ("float64",),
               "diffusers 0.42.1 src/diffusers/models/embeddings.py lines 58-63"),
              ("test_ddim_step", "ddim_step", ("float32",), None),
              ("test_vjp", "rotate", None, "pytorch/vision#6517"),
              ("test_forward", "resized_crop", None, None)],
    "jax": [("test_forward", "gelu", F64_F32_BF16, None),
            ("test_vjp", "gelu", None, None),
            ("test_forward_tail", "gelu", F64_F32_BF16, None),
            ("test_vjp", "elu", None, None),
            ("test_batch_norm_large_mean_keeps_unit_std", "batch_norm", ("float32", "float64"),
             "flax#1491"),
            ("test_vjp", "conv1d", ("float32", "float16", "bfloat16"), None),
            ("test_clip_by_global_norm_zero_cases", "clip_by_global_norm", None, "optax#1752"),
            ("test_ddim_step", "ddim_step", ("float32",), None),
            ("test_forward", "rotate", None, None),
            ("test_vjp", "rotate", None, None),
            ("test_rotate_by_90_is_rot90", "rotate", None, None),
            ("test_network_forward", "mlp", None, None),
            ("test_network_gradients", "mlp", None, None),
            ("test_network_training", "mlp", None, None)],
    "torch_compile": [
        ("test_forward", "elu", ("float32", "float64", "bfloat16"), "pytorch#189803 (fixed by "
         "pytorch#190533, after 2.13)"),
        ("test_forward_tail", "elu", ("float32", "float64", "bfloat16"), "pytorch#189803 (fixed "
         "by pytorch#190533, after 2.13)"),
        ("test_trajectory", "adam", ("float32", "float64"),
         "pytorch#88173; float32 step kept deliberately (pytorch#173901's review)"),
        ("test_trajectory", "adamw", ("float32", "float64"), "pytorch#88173"),
        ("test_trajectory", "adagrad", ("float64",), "pytorch#88173"),
        ("test_vjp", "avg_pool2d", None, "pytorch#198119"),
        *[("test_network_training", arch, ("float32", "float64"), "pytorch#88173")
          for arch in ("mlp", "lenet", "resnet")],
        ("test_denoiser_training", "denoiser", ("float32", "float64"), "pytorch#88173"),
        ("test_dcgan_training", "dcgan", ("float32", "float64"), "pytorch#88173"),
        ("test_char_lm_training", "char_lm", ("float32", "float64"), "pytorch#88173"),
        ("test_vae_training", "vae", ("float32", "float64"), "pytorch#88173"),
        ("test_l2_penalty_is_not_adamw_decay", "l2_penalty", ("float32", "float64"),
         "pytorch#88173"),
        *[("test_network_training", arch, ("float64",), "pytorch#88173")
          for arch in ("mlp", "lenet", "resnet")]],
}


#: the components whose entries are scoped (to an argument's values), per adapter: torch's
#: bfloat16 conv1d and conv2d weight gradients and conv_transpose2d gradients, gelu inside an
#: MLP, float16 cross-entropy with label smoothing, diffusers' DDIM step at eta = 1 in
#: float32, torchvision's bilinear rotate with a fill, the antialiased resize to one column;
#: jax's conv1d input gradient, optax's clipping of a zero gradient with max_norm = 0, the
#: DDIM step, dm_pix's rotation by multiples of 90 degrees, the tanh GELU inside an MLP;
#: torch-compile's avg_pool2d backward in ceil mode and its Adam and Adagrad steps inside
#: trainings
SCOPED = {
    "torch": {"conv1d", "conv2d", "conv_transpose2d", "mlp", "cross_entropy", "ddim_step",
              "rotate", "resized_crop"},
    "jax": {"conv1d", "clip_by_global_norm", "ddim_step", "rotate", "mlp"},
    "torch_compile": {"avg_pool2d", "mlp", "lenet", "resnet", "denoiser", "char_lm", "vae"},
}


@pytest.mark.parametrize("adapter", sorted(EXPECTED))
def test_entries_load_as_before(adapter):
    kds = load(adapter)
    assert [(k.test, k.component, k.dtypes, k.upstream) for k in kds] == EXPECTED[adapter]
    for k in kds:
        assert len(k.reason) > 100 and "{" not in k.reason, k
        assert k.scoped == (k.component in SCOPED[adapter]), k


def test_shared_texts_are_expanded():
    torch = load("torch")
    assert torch[0].reason.startswith("F.gelu forms 1 + erf(x/sqrt 2) (exact)")
    assert torch[0].reason.endswith("in bfloat16 0.0 at x = -6 (exact -5.9e-9)")
    assert torch[5].reason == "L(-x, 0) loses its value, L(x, 1) does not: " + torch[3].reason
    jax = load("jax")
    assert jax[1].reason.startswith("jax.nn.gelu(approximate=True) computes 0.5 x (1 + tanh(u))")
    assert "margin <= 0.45. Its VJP inherits the cancellation" in jax[1].reason


@pytest.mark.parametrize(("module", "cls", "name"), [("torch", "TorchBackend", "torch"),
                                                     ("jax", "JaxBackend", "jax")])
def test_adapters_declare_the_data(module, cls, name):
    need(module)
    mod = __import__(f"backends.{module}_backend", fromlist=[cls])
    assert getattr(mod, cls).known_divergences == load(name)


def test_torch_compile_adds_its_own_to_torch():
    need("torch")
    from backends.torch_backend import TorchBackend
    from backends.torch_compile import TorchCompileBackend

    assert TorchCompileBackend.known_divergences == (TorchBackend.known_divergences
                                                     + load("torch_compile"))


def test_package_ships_the_files():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "backends.divergences" in setuptools["packages"]
    assert "*.toml" in setuptools["package-data"]["backends.divergences"]


def test_scope_and_errors():
    (kd,) = from_toml('[[divergence]]\ntests = ["test_trajectory"]\ncomponent = "adam"\n'
                      'reason = "r"\nscope = [["eps", ">=", 1e-3], ["amsgrad", "in", ["torch"]]]')
    assert kd == KnownDivergence("test_trajectory", "adam", "r",
                                 scope=(("eps", ">=", 1e-3), ("amsgrad", "in", ("torch",))))
    assert kd.in_scope({"eps": 0.01, "amsgrad": "torch"})
    with pytest.raises(ValueError, match="x.toml: divergence 1: unknown keys \\['dtype'\\]"):
        from_toml('[[divergence]]\ntests = []\ncomponent = "c"\nreason = "r"\ndtype = "f"', "x.toml")
    with pytest.raises(ValueError, match="names \\{gelu\\}, which \\[texts\\] lacks"):
        from_toml('[[divergence]]\ntests = ["t"]\ncomponent = "c"\nreason = "{gelu}"')


def test_a_scope_may_name_a_predicate():
    entry = """
[[divergence]]
tests = ["test_vjp"]
component = "conv2d"
reason = "r"
scope = "strided_implicit_padding_2d"
"""
    (kd,) = from_toml(entry)
    assert kd.scope_text.startswith("a spatial axis with stride > 1")
    assert kd.in_scope({"stride": (1, 3), "padding": (0, 2), "dilation": (2, 1)})
    assert not kd.in_scope({"stride": (1, 3), "padding": (2, 0), "dilation": 1})
    assert not kd.in_scope({"stride": 2, "padding": ((1, 0), (1, 0)), "dilation": 1})
    assert not kd.in_scope({"stride": 2, "padding": "valid", "dilation": 1})
    with pytest.raises(ValueError, match="not a predicate"):
        from_toml(entry.replace("strided_implicit_padding_2d", "nonesuch"))


@pytest.mark.parametrize(("name", "args", "inside"), [
    ("width_1_strided_2d", {"x_shape": (1, 1, 5, 1), "stride": 2}, True),
    ("width_1_strided_2d", {"x_shape": (1, 1, 5, 1), "stride": (2, 1)}, False),
    ("width_1_strided_2d", {"x_shape": (1, 1, 5, 2), "stride": 2}, False),
    ("width_1_strided_2d", {"stride": 2}, False),  # no shape noted: not in scope
    # dev seed 3's example: 'same' with stride 3 on a width of 2 leaves an output width of 1
    ("conv2d_output_width_1_strided", {"x_shape": (3, 4, 6, 2), "w_shape": (4, 2, 3, 3),
                                       "stride": 3, "dilation": 2, "padding": "same"}, True),
    ("conv2d_output_width_1_strided", {"x_shape": (1, 8, 9, 3), "w_shape": (1, 8, 1, 3),
                                       "stride": 2}, True),
    ("conv2d_output_width_1_strided", {"x_shape": (1, 8, 9, 3), "w_shape": (1, 8, 1, 3),
                                       "stride": (2, 1)}, False),
    ("conv2d_output_width_1_strided", {"x_shape": (1, 8, 9, 5), "w_shape": (1, 8, 1, 3),
                                       "stride": 2}, False),
    ("conv2d_output_width_1_strided", {"x_shape": (1, 8, 9, 1), "w_shape": (1, 8, 1, 1),
                                       "stride": 2, "padding": ((0, 0), (1, 1))}, False),
])
def test_shape_scopes(name, args, inside):
    """The scopes that read an input's shape (noted by properties.checks.draw_inputs)."""
    assert PREDICATES[name](args) is inside
