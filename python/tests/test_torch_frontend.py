"""veil.torch: the seed's ConvNet through convert_model (against torch, and the digits
accuracy of veil-convnet), encrypted datasets with a DataLoader, serve / query, and
keys and ciphertexts crossing the Python / CLI / server boundary both ways."""

import json
import os
import pathlib
import subprocess
import urllib.request

import numpy as np
import pytest

import veil

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
import onnx.numpy_helper  # noqa: E402
import veil.torch as vt  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from conftest import bits  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"

pytestmark = pytest.mark.skipif(not veil.onnx_available(), reason="built without ONNX import")


class ConvNet(nn.Module):
    """The seed's ConvNet (tools/train_convnet.py): conv 1->4 k7 s3, x^2, 256->64, x^2, 64->10."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=7, stride=3)
        self.fc1 = nn.Linear(256, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.conv(x)
        x = x * x
        x = self.fc1(torch.flatten(x, 1))
        x = x * x
        return self.fc2(x)


def trained_convnet():
    """The committed weights (tests/data/convnet_digits.onnx's initializers) in the torch class."""
    graph = onnx.load(str(DATA / "convnet_digits.onnx")).graph
    state = {t.name: torch.from_numpy(onnx.numpy_helper.to_array(t).copy()) for t in graph.initializer}
    net = ConvNet()
    net.load_state_dict(state)
    return net.eval()


def digits(count=400):
    images = np.fromfile(DATA / "digits_test_28x28.u8", dtype=np.uint8).reshape(-1, 1, 28, 28)[:count]
    labels = np.fromfile(DATA / "digits_test_labels.u8", dtype=np.uint8)[:count]
    return torch.from_numpy(images.astype(np.float32) / 255.0), torch.from_numpy(labels.astype(np.int64))


@pytest.fixture(scope="module")
def convnet():
    return trained_convnet()


@pytest.fixture(scope="module")
def converted(convnet):
    model = vt.convert_model(convnet, torch.zeros(1, 1, 28, 28), precision_bits=12, name="digits")
    model.model.keygen()
    return model


def torch_float64(net, x):
    net64 = ConvNet().double()
    net64.load_state_dict({k: v.double() for k, v in net.state_dict().items()})
    with torch.no_grad():
        return net64(x.double()).numpy()


def test_convnet_converts_and_matches_torch(convnet, converted):
    m = converted.model
    assert m.input_shape == (1, 28, 28) and m.output_size == 10
    assert m.measured_bits >= m.promised_bits == 12
    assert m.log_n == 13 and m.batch == 64  # the compiler's choice for the ConvNet (docs/models.md)
    x, labels = digits()
    want = torch_float64(convnet, x)
    plain = converted.plain(x)
    assert bits(plain, want) >= 40  # the same network in float64
    got = converted(x).numpy()  # encrypted, 7 runs of 64
    assert got.shape == (400, 10)
    assert bits(got, want) >= 12  # the promise, on fresh keys and all 400 test images
    agree = float(np.mean(got.argmax(1) == want.argmax(1)))
    assert agree >= 0.99
    # veil-convnet's accuracy: its encrypted classes agree with the float64 ones on every
    # test image (tests/data/convnet_digits_expected.txt), so it is torch's.
    expected = np.loadtxt(DATA / "convnet_digits_expected.txt", comments="#")
    torch_accuracy = float(np.mean(expected[:, 2] == expected[:, 1]))
    accuracy = float(np.mean(got.argmax(1) == labels.numpy()))
    assert abs(accuracy - torch_accuracy) <= 1 / 400 + 1e-12, (accuracy, torch_accuracy)
    print(f"[python convnet] 400 images: accuracy {accuracy:.4f} (veil-convnet / torch {torch_accuracy:.4f}), "
          f"agreement {agree:.4f}, {bits(got, want):.1f} bits")


def test_enc_dataset_with_a_dataloader(ctx, convnet):
    x, labels = digits(6)
    dataset = TensorDataset(x.reshape(6, -1)[:, :64].double(), labels)
    loader = DataLoader(vt.EncDataset(ctx, dataset), batch_size=None, shuffle=False)
    w = convnet.fc2.weight.detach().double().numpy().T  # 64 x 10
    seen = 0
    for (enc, y), (plain, label) in zip(loader, dataset):
        assert isinstance(enc, veil.Vector) and enc.size == 64
        assert int(y) == int(label)
        assert bits(enc.decrypt(), plain.numpy()) >= 25
        assert bits((enc @ w).decrypt(), plain.numpy() @ w) >= 20
        seen += 1
    assert seen == 6


def test_enc_conv_dataset_runs_the_first_convolution(ctx, convnet):
    x, labels = digits(3)
    loader = DataLoader(vt.EncConvDataset(ctx, TensorDataset(x, labels), kernel_size=7, stride=3), batch_size=None)
    kernel = convnet.conv.weight.detach().double().numpy()[:, 0]  # 4 x 7 x 7
    bias = convnet.conv.bias.detach().double().numpy()
    for i, ((enc, windows), y) in enumerate(loader):
        assert windows == 64 and int(y) == int(labels[i])
        channels = enc.conv2d_im2col(kernel, windows, bias)
        with torch.no_grad():
            want = torch.nn.functional.conv2d(x[i:i + 1].double(), convnet.conv.weight.double(),
                                              convnet.conv.bias.double(), stride=3).numpy()[0]
        for c, v in enumerate(channels):
            assert bits(v.decrypt()[:windows], want[c].reshape(-1)) >= 20


def test_batched_dataset_packs_many_inputs_per_ciphertext(converted):
    x, labels = digits(100)
    dataset = vt.BatchedEncDataset(converted, TensorDataset(x, labels))
    assert len(dataset) == 2 and dataset.batch == 64
    loader = DataLoader(dataset, batch_size=None)
    outputs, targets = [], []
    for enc, y in loader:
        assert isinstance(enc, veil.EncryptedBatch) and enc.runs == 1
        outputs.append(converted.model.decrypt(converted.model.run(enc)))
        targets += [int(t) for t in y]
    got = np.concatenate(outputs)
    assert got.shape == (100, 10) and targets == labels.tolist()
    assert bits(got, converted.plain(x)) >= 12
    with pytest.raises(ValueError, match="batch must be in"):
        vt.BatchedEncDataset(converted, TensorDataset(x, labels), batch=65)


def test_serve_and_query(converted, tmp_path):
    x, _ = digits(10)
    with vt.serve(converted) as server:
        got = vt.query(server.url, x, cache_dir=str(tmp_path / "keys"))
    assert isinstance(got, torch.Tensor) and got.shape == (10, 10)
    assert bits(got.numpy(), converted.plain(x)) >= 12
    # the client keeps its secret key private
    secret = next(tmp_path.glob("keys/**/secret.key"))
    assert (secret.stat().st_mode & 0o077) == 0


def _post(url, body):
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status, r.read()


def test_python_keys_and_ciphertexts_are_accepted_by_veil_serve(converted):
    """Keys and ciphertexts made in Python, sent over HTTP as any client would."""
    m = converted.model
    x, _ = digits(5)
    with vt.serve(converted) as server:
        status, body = _post(f"{server.url}/v1/sessions?model=digits", m.evaluation_keys())
        assert status == 201
        session = json.loads(body)["session"]
        status, answer = _post(f"{server.url}/v1/sessions/{session}/infer", m.encrypt(x).serialize())
        assert status == 200
    out = m.decrypt(m.load_batch(answer, outputs=True, count=5))
    assert bits(out, converted.plain(x)) >= 12


def _cli():
    path = os.environ.get("VEIL_CLI") or str(REPO / "build" / "bin" / "veil")
    assert os.access(path, os.X_OK), f"the veil CLI is needed at {path} (set VEIL_CLI, or build the veil-cli target)"
    return path


def test_python_and_cli_exchange_keys_and_ciphertexts(converted, tmp_path):
    cli = _cli()
    m = converted.model
    model_path = tmp_path / "digits.veil"
    converted.save(model_path)
    x, _ = digits(70)  # two runs
    want = converted.plain(x)

    # Python's keys and query -> `veil eval` -> Python decrypts.
    m.save_keys(str(tmp_path / "pykeys"))
    assert (os.stat(tmp_path / "pykeys" / "secret.key").st_mode & 0o777) == 0o600
    query = m.encrypt(x)
    (tmp_path / "q.bin").write_bytes(query.serialize())
    (tmp_path / "q.bin.json").write_text(query.sidecar())
    subprocess.run([cli, "eval", str(model_path), "--keys", str(tmp_path / "pykeys"), "-i", str(tmp_path / "q.bin"),
                    "-o", str(tmp_path / "a.bin"), "--quiet"], check=True)
    side = json.loads((tmp_path / "a.bin.json").read_text())
    answer = m.load_batch((tmp_path / "a.bin").read_bytes(), outputs=True, count=side["inputs"])
    assert bits(m.decrypt(answer), want) >= 12

    # The CLI's keys and query -> Python evaluates (a server: no secret key) -> `veil decrypt`.
    np.save(tmp_path / "x.npy", x.numpy().reshape(70, 784).astype(np.float64))
    keys = str(tmp_path / "clikeys")
    subprocess.run([cli, "keygen", str(model_path), "-o", keys, "--quiet"], check=True)
    subprocess.run([cli, "encrypt", str(model_path), "--keys", keys, "-i", str(tmp_path / "x.npy"), "-o",
                    str(tmp_path / "q2.bin"), "--quiet"], check=True)
    server = veil.Model(model_path)
    server.load_keys(keys, secret=False)
    assert not server.has_secret_key and server.has_evaluation_keys
    count = json.loads((tmp_path / "q2.bin.json").read_text())["inputs"]
    result = server.run(server.load_batch((tmp_path / "q2.bin").read_bytes(), count=count))
    (tmp_path / "a2.bin").write_bytes(result.serialize())
    (tmp_path / "a2.bin.json").write_text(result.sidecar())
    subprocess.run([cli, "decrypt", str(model_path), "--keys", keys, "-i", str(tmp_path / "a2.bin"), "-o",
                    str(tmp_path / "y.npy"), "--quiet"], check=True)
    assert bits(np.load(tmp_path / "y.npy"), want) >= 12
    with pytest.raises(veil.Error, match="needs the secret key"):
        server.decrypt(result)


def test_replayed_runs_give_the_words_of_direct_runs(converted, tmp_path):
    # replay="always" on the cpu: the first run() records (on cpu: runs) the model, later
    # ones go through the recording; every answer is word for word a direct run's.
    model_path = tmp_path / "digits.veil"
    converted.save(model_path)
    converted.model.save_keys(str(tmp_path / "keys"))
    x, _ = digits(70)  # two runs per call
    query = converted.model.encrypt(x)
    direct = veil.Model(model_path, replay="never")
    direct.load_keys(str(tmp_path / "keys"), secret=False)
    replayed = veil.Model(model_path, replay="always")
    replayed.load_keys(str(tmp_path / "keys"), secret=False)
    want = direct.run(direct.load_batch(query.serialize(), count=70)).serialize()
    for _ in range(2):
        got = replayed.run(replayed.load_batch(query.serialize(), count=70)).serialize()
        assert got == want
    assert not replayed.replays  # the cpu has nothing to replay on a device
    assert not veil.Model(model_path).replays  # auto: only on cuda
    with pytest.raises(ValueError, match="replay must be"):
        veil.Model(model_path, replay="sometimes")


def test_bad_inputs_raise(converted, ctx):
    m = converted.model
    with pytest.raises(ValueError, match="784"):
        m.encrypt(np.zeros((2, 783)))
    x, _ = digits(2)
    enc = m.encrypt(x)
    with pytest.raises(veil.Error, match="not encrypted inputs"):
        m.decrypt(enc)
    with pytest.raises(veil.Error):
        m.load_batch(enc.serialize()[:-10])
    with pytest.raises(veil.Error, match="ciphertext"):
        m.load_batch(enc.serialize(), outputs=True)
    with pytest.raises(veil.Error, match="ReLU|Relu"):
        vt.convert_model(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.ReLU()), torch.zeros(1, 4))
