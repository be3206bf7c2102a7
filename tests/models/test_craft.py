"""CRAFT / RefineNet key layout against the official manifests, forward contracts, LightCRAFT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ocr_tasks.models.detection.craft import CRAFT, RefineNet, init_weights
from ocr_tasks.models.detection.light import LightCRAFT

MANIFEST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "manifests"
PREFIX = "module."

MODELS = {
    "craft_mlt_25k": CRAFT,
    "craft_ic15_20k": CRAFT,
    "craft_refiner_CTW1500": RefineNet,
}


def _load_manifest(stem: str) -> dict:
    path = MANIFEST_DIR / f"{stem}.json"
    if not path.is_file():
        pytest.skip(f"manifest {path} not found (expected the shared specs folder next to the repo root)")
    return json.loads(path.read_text())


def _strip(key: str) -> str:
    assert key.startswith(PREFIX), key
    return key[len(PREFIX) :]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("stem", sorted(MODELS))
def test_state_dict_matches_manifest(stem: str) -> None:
    manifest = _load_manifest(stem)
    required = {_strip(k): (tuple(shape), dtype) for k, shape, dtype in manifest["tensors"]}
    optional = {_strip(k): (tuple(shape), dtype) for k, shape, dtype in manifest["optional_tensors"]}
    assert len(required) == manifest["num_tensors"]

    model = MODELS[stem](init=False)
    state = model.state_dict()
    got_required = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    got_optional = {k: v for k, v in state.items() if k.endswith("num_batches_tracked")}

    assert sorted(set(got_required) - set(required)) == []
    assert sorted(set(required) - set(got_required)) == []
    assert set(got_optional) <= set(optional)
    for key, (shape, dtype) in required.items():
        tensor = got_required[key]
        assert tuple(tensor.shape) == shape, key
        assert str(tensor.dtype).removeprefix("torch.") == dtype, key
    # Registration order equals the file order of the official state_dict.
    assert list(got_required) == [_strip(k) for k, _, _ in manifest["tensors"]]
    assert sum(p.numel() for p in model.parameters()) == manifest["num_params"]


def test_refiner_loads_manifest_shaped_state_dict() -> None:
    manifest = _load_manifest("craft_refiner_CTW1500")
    fake = {_strip(k): torch.zeros(shape, dtype=torch.float32) for k, shape, _ in manifest["tensors"]}
    # num_batches_tracked may be absent from a checkpoint: only those keys may be missing.
    missing, unexpected = RefineNet(init=False).load_state_dict(fake, strict=False)
    assert unexpected == []
    assert all(k.endswith("num_batches_tracked") for k in missing)


def test_craft_and_refiner_forward_shapes() -> None:
    craft = CRAFT().eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        y, feature = craft(x)
        assert y.shape == (1, 32, 48, 2)
        assert feature.shape == (1, 32, 32, 48)
        refined = RefineNet().eval()(y, feature)
    assert refined.shape == (1, 32, 48, 1)
    assert torch.isfinite(y).all() and torch.isfinite(refined).all()


def _upstream_style_backbone(model: CRAFT, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Re-run the backbone the way upstream does: torchvision slice cuts with in-place ReLUs."""
    modules: dict[int, nn.Module] = {}
    for name in ("slice1", "slice2", "slice3", "slice4"):
        for child_name, child in getattr(model.basenet, name).named_children():
            modules[int(child_name)] = nn.ReLU(inplace=True) if isinstance(child, nn.ReLU) else child
    cuts = ((0, 12), (12, 19), (19, 29), (29, 39))
    slices = [nn.Sequential(*(modules[i] for i in range(a, b))) for a, b in cuts]
    assert all(isinstance(s[0], nn.ReLU) for s in slices[1:])  # each upstream slice starts with ReLU
    h = slices[0](x)
    relu2_2 = h
    h = slices[1](h)  # mutates relu2_2 in place
    relu3_2 = h
    h = slices[2](h)
    relu4_3 = h
    h = slices[3](h)
    relu5_3 = h
    fc7 = model.basenet.slice5(h)
    return fc7, relu5_3, relu4_3, relu3_2, relu2_2


def test_backbone_skips_equal_upstream_inplace_semantics() -> None:
    model = CRAFT().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = model.basenet(x)
        ref = _upstream_style_backbone(model, x.clone())
    for a, b in zip(ours, ref, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b)


def test_decoder_skip_inputs_have_the_right_activation() -> None:
    model = CRAFT().eval()
    captured: dict[str, torch.Tensor] = {}

    def grab(name: str):
        def hook(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            captured[name] = args[0].detach().clone()

        return hook

    for i in range(1, 5):
        getattr(model, f"upconv{i}").register_forward_pre_hook(grab(f"upconv{i}"))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))

    fc7, s16 = captured["upconv1"][:, :1024], captured["upconv1"][:, 1024:]
    s8 = captured["upconv2"][:, 256:]
    s4 = captured["upconv3"][:, 128:]
    s2 = captured["upconv4"][:, 64:]
    assert (s16.shape[1], s8.shape[1], s4.shape[1], s2.shape[1]) == (512, 512, 256, 128)
    assert s16.min() < 0  # /16 skip is conv5_2 + BN before ReLU
    assert fc7.min() < 0  # slice5 is raw conv output
    for skip in (s8, s4, s2):  # /8, /4, /2 skips are post-ReLU
        assert skip.min() >= 0
        assert (skip > 0).any()


def test_craft_output_changes_if_skip_were_post_relu() -> None:
    """The /16 pre-ReLU skip matters: feeding relu(s16) to upconv1 changes the maps."""
    model = CRAFT().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y, _ = model(x)
        handle = model.upconv1.register_forward_pre_hook(
            lambda _m, args: (torch.cat([args[0][:, :1024], args[0][:, 1024:].clamp_min(0)], dim=1),)
        )
        y_relu, _ = model(x)
        handle.remove()
    assert (y - y_relu).abs().max() > 1e-4


def test_init_weights_xavier_and_bn() -> None:
    block = nn.Sequential(nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.Linear(4, 3))
    for p in block.parameters():
        nn.init.constant_(p, 5.0)
    init_weights([block])
    conv, bn, lin = block
    bound = (6.0 / (8 * 9 + 16 * 9)) ** 0.5
    assert conv.weight.abs().max() <= bound + 1e-6
    assert conv.weight.std() > bound / 4
    assert torch.count_nonzero(conv.bias) == 0
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert lin.weight.std() < 0.05 and torch.count_nonzero(lin.bias) == 0


def test_craft_freeze_only_slice1() -> None:
    model = CRAFT(init=False, freeze=True)
    assert not any(p.requires_grad for p in model.basenet.slice1.parameters())
    assert all(p.requires_grad for p in model.basenet.slice2.parameters())


# --------------------------------------------------------------------------------- LightCRAFT


def count_macs(model: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of all Conv2d/Linear layers for one 3 x height x width image.

    Runs on the meta device (shapes only, no compute) in training mode so every conv module is
    called (eval mode folds BN and calls the functional conv directly).
    """
    total = 0

    def hook(module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += out[0].numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            total += out[0].numel() * module.in_features

    meta = model.to("meta").train()
    handles = [m.register_forward_hook(hook) for m in meta.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        meta(torch.empty(1, 3, height, width, device="meta"))
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_light_craft_forward_contract(width: float) -> None:
    model = LightCRAFT(width=width)
    x = torch.randn(2, 3, 64, 96)
    for mode in (True, False):
        model.train(mode)
        y, feature = model(x)
        assert y.shape == (2, 32, 48, 2)
        assert feature.shape == (2, model.feature_channels, 32, 48)
        assert torch.isfinite(y).all()


def test_light_craft_eval_folding_matches_unfolded_bn() -> None:
    model = LightCRAFT()
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)
    model.eval()
    bn_calls = []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(lambda *_: bn_calls.append(1))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        folded = model(x)
        assert bn_calls == []  # every BN was folded into its conv
        model.set_bn_folding(False)
        unfolded = model(x)
        assert len(bn_calls) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        model.set_bn_folding(True)
        again = model(x)
    assert (folded[0] - again[0]).abs().max() == 0
    for a, b in zip(folded, unfolded, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_light_craft_trains_one_step() -> None:
    model = LightCRAFT(width=0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(2, 3, 64, 64)
    target = torch.rand(2, 32, 32, 2)
    y, _ = model(x)
    loss = torch.nn.functional.mse_loss(y, target)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    opt.step()
    y2, _ = model(x)
    assert torch.nn.functional.mse_loss(y2, target) < loss


def test_light_craft_cost_budget_at_page_size() -> None:
    # A 1240x1754 page on canvas 1280 -> 905x1280 -> padded to 928x1280.
    model = LightCRAFT()
    params = sum(p.numel() for p in model.parameters())
    macs = count_macs(model, 928, 1280)
    assert 0.5e6 < params < 2e6
    assert 3e9 < macs < 9e9
    assert count_macs(CRAFT(init=False), 928, 1280) > 40 * macs


def test_craft_macs_match_spec() -> None:
    # SPEC §2.9: 437.1 GMAC for CRAFT and 139.6 GMAC for the refiner at 960 x 1280.
    assert count_macs(CRAFT(init=False), 960, 1280) == pytest.approx(437.1e9, rel=1e-3)

    def refiner_macs() -> int:
        total = 0

        def hook(module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
            nonlocal total
            total += out[0].numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]

        model = RefineNet(init=False).to("meta")
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(hook)
        with torch.no_grad():
            model(torch.empty(1, 480, 640, 2, device="meta"), torch.empty(1, 32, 480, 640, device="meta"))
        return total

    assert refiner_macs() == pytest.approx(139.6e9, rel=1e-3)
