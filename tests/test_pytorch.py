"""fastrnn.from_torch and fastrnn.to_torch (skipped without PyTorch): every supported
combination computes what the PyTorch module computes, outputs and gradients, in float64."""

import itertools

import numpy as np
import pytest

import fastrnn

torch = pytest.importorskip("torch")

KINDS = {
    "rnn-tanh": lambda **kw: torch.nn.RNN(nonlinearity="tanh", **kw),
    "rnn-relu": lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw),
    "gru": lambda **kw: torch.nn.GRU(**kw),
    "lstm": lambda **kw: torch.nn.LSTM(**kw),
}
COMBINATIONS = list(itertools.product(KINDS, (1, 2, 3), (False, True), (False, True)))


def _module(kind, num_layers, bidirectional, batch_first, I=3, H=4, seed=0):
    torch.manual_seed(seed)
    return KINDS[kind](input_size=I, hidden_size=H, num_layers=num_layers, bidirectional=bidirectional,
                       batch_first=batch_first, dtype=torch.float64)


def _torch_forward_backward(module, x, dy):
    """PyTorch's outputs and gradients for time-major x and the loss sum(y * dy)."""
    tx = torch.tensor(x, requires_grad=True)
    inputs = tx.transpose(0, 1) if module.batch_first else tx
    ty = module(inputs)[0]
    if module.batch_first:
        ty = ty.transpose(0, 1)
    module.zero_grad()
    (ty * torch.from_numpy(dy)).sum().backward()
    grads = {name: p.grad.numpy().copy() for name, p in module.named_parameters()}
    return ty.detach().numpy(), tx.grad.numpy(), grads


def _our_key(name, layer):
    """PyTorch's parameter name -> the fastrnn layer's params key."""
    base, rest = name.split("_l", 1)
    index, _, reverse = rest.partition("_")
    key = base
    if isinstance(layer, fastrnn.DilatedRNN):
        inner = layer.cells[0]
        prefix = f"{index}."
    else:
        inner, prefix = layer, ""
    if isinstance(inner, fastrnn.Bidirectional):
        prefix += "backward." if reverse else "forward."
    return prefix + key


@pytest.mark.parametrize("kind, num_layers, bidirectional, batch_first", COMBINATIONS,
                         ids=[f"{k}-L{n}-{'bi' if b else 'uni'}-{'bf' if f else 'tm'}" for k, n, b, f in COMBINATIONS])
def test_from_torch_computes_what_the_module_computes(kind, num_layers, bidirectional, batch_first):
    module = _module(kind, num_layers, bidirectional, batch_first)
    layer = fastrnn.from_torch(module)
    assert layer.dtype == np.float64 and layer.output_size == 4 * (2 if bidirectional else 1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 2, 3))
    dy = rng.standard_normal((6, 2, layer.output_size))
    y, _, tape = layer.forward(x)
    grads, dx, _ = layer.backward(tape, dy)
    ty, tdx, tgrads = _torch_forward_backward(module, x, dy)
    np.testing.assert_allclose(y, ty, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tdx, rtol=1e-10, atol=1e-12)
    assert len(grads) == len(tgrads)
    for name, value in tgrads.items():
        np.testing.assert_allclose(grads[_our_key(name, layer)], value, rtol=1e-10, atol=1e-12, err_msg=name)
    # ... and back: the same module, parameter for parameter.
    back = fastrnn.to_torch(layer)
    assert back.num_layers == num_layers and back.bidirectional == bidirectional and not back.batch_first
    for name, value in module.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[name].numpy(), value.numpy(), err_msg=name)


def test_a_trained_layer_round_trips():
    """Train through fastrnn, move to PyTorch, and predict the same."""
    core = fastrnn.DilatedRNN([fastrnn.Bidirectional(fastrnn.LSTM(2, 5, seed=0), fastrnn.LSTM(2, 5, seed=1)),
                               fastrnn.Bidirectional(fastrnn.LSTM(10, 5, seed=2), fastrnn.LSTM(10, 5, seed=3))], [1, 1])
    model = fastrnn.Model(core, 2, seed=0)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((16, 7, 2)), rng.integers(0, 2, (16, 7))
    model.fit(X, Y, epochs=3, batch_size=8, optimizer=fastrnn.Adam(0.05), progress=False)
    module = fastrnn.to_torch(model.core)
    x = np.swapaxes(X, 0, 1).copy()
    ours = model.core.forward(x)[0]
    theirs = module(torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    again = fastrnn.from_torch(module)
    np.testing.assert_allclose(again.forward(x)[0], ours, rtol=1e-12, atol=1e-14)


def test_float32_modules_give_float32_layers():
    module = torch.nn.GRU(3, 4)
    layer = fastrnn.from_torch(module)
    assert layer.dtype == np.float32
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(layer.forward(x)[0], module(torch.from_numpy(x))[0].detach().numpy(), rtol=2e-5,
                               atol=2e-6)
    assert fastrnn.to_torch(layer).weight_hh_l0.dtype == torch.float32


@pytest.mark.parametrize("make, error, message", [
    (lambda: torch.nn.LSTM(3, 4, num_layers=2, dropout=0.5), ValueError, "dropout=0.5"),
    (lambda: torch.nn.LSTM(3, 4, proj_size=2), ValueError, "proj_size=2"),
    (lambda: torch.nn.GRU(3, 4, bias=False), ValueError, "bias=False"),
    (lambda: torch.nn.GRU(3, 4, dtype=torch.float16), ValueError, "float16"),
    (lambda: torch.nn.Linear(3, 4), TypeError, "expected a torch.nn.RNN, GRU or LSTM, got Linear"),
], ids=["dropout", "proj_size", "no-bias", "float16", "linear"])
def test_unsupported_modules_are_a_clear_error(make, error, message):
    with pytest.raises(error, match=message):
        fastrnn.from_torch(make())


@pytest.mark.parametrize("make, message", [
    (lambda: fastrnn.UGRNN(3, 4), "UGRNN has no PyTorch module"),
    (lambda: fastrnn.RNN(3, 4, "sigmoid"), "nonlinearity='sigmoid'"),
    (lambda: fastrnn.DilatedRNN([fastrnn.GRU(3, 4), fastrnn.GRU(4, 4)], [1, 2]), "dilations"),
    (lambda: fastrnn.DilatedRNN([fastrnn.GRU(3, 4), fastrnn.LSTM(4, 4)], [1, 1]), "one kind and hidden size"),
    (lambda: fastrnn.DilatedRNN([fastrnn.GRU(3, 4), fastrnn.GRU(4, 5)], [1, 1]), "one kind and hidden size"),
    (lambda: fastrnn.Bidirectional(fastrnn.GRU(3, 4), fastrnn.LSTM(3, 4)), "one kind and hidden size"),
    (lambda: fastrnn.DilatedRNN([fastrnn.Bidirectional(fastrnn.GRU(3, 4), fastrnn.GRU(3, 4)), fastrnn.GRU(8, 4)],
                                [1, 1]), "not bidirectional"),
], ids=["ugrnn", "sigmoid", "dilated", "mixed-kinds", "mixed-sizes", "mixed-directions", "mixed-layers"])
def test_layers_without_a_pytorch_module_are_a_clear_error(make, message):
    with pytest.raises(ValueError, match=message):
        fastrnn.to_torch(make())
