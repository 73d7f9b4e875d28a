"""compile_onnx -> Server (in-process, loopback port 0) -> query: the decrypted answers
match the plaintext model; bad requests raise, the server stops."""

import os
import pathlib

import numpy as np
import pytest

import veil
from conftest import bits

DATA = pathlib.Path(__file__).resolve().parents[2] / "tests" / "data"

pytestmark = pytest.mark.skipif(not veil.onnx_available(), reason="built without ONNX import")


def _expected():
    # tools/export_onnx.py: per case a line of 144 inputs and a line of 8 torch outputs
    rows = [list(map(float, l.split())) for l in (DATA / "onnx_ops_expected.txt").read_text().splitlines()
            if l.strip() and not l.startswith("#")]
    return np.array(rows[0::2]), np.array(rows[1::2])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    inputs, _ = _expected()
    data = veil.compile_onnx(str(DATA / "onnx_ops.onnx"), name="ops", promise_bits=10, max_log_n=14,
                             input_min=float(inputs.min()), input_max=float(inputs.max()))
    path = tmp_path_factory.mktemp("models") / "ops.veil"
    path.write_bytes(data)
    return path


def test_compiled_model_describes_itself(model_file):
    info = veil.model_info(model_file)
    assert info["name"] == "ops" and info["input_shape"] == (1, 12, 12) and info["output_size"] == 8
    assert info["measured_bits"] >= info["promised_bits"] == 10
    inputs, torch_out = _expected()
    # the plain float64 evaluation of the imported model is torch's
    assert bits(veil.model_forward(model_file, inputs), torch_out) >= 20  # float32 weights


def test_server_and_query(model_file, tmp_path):
    inputs, torch_out = _expected()
    with veil.Server([model_file.read_bytes()]) as server:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        out = veil.query(server.url, inputs, cache_dir=str(tmp_path))
        assert out.shape == torch_out.shape
        assert bits(out, torch_out) >= 10  # the compiler's promise
        # a client reuses its keys and session; the model name may be given
        client = veil.Client(server.url, "ops", cache_dir=str(tmp_path))
        assert client.input_size == 144 and client.output_size == 8
        assert bits(client.infer(inputs[:1]), torch_out[:1]) >= 10
        assert bits(client.infer(inputs[0].reshape(1, 12, 12)), torch_out[:1]) >= 10
        with pytest.raises(ValueError):
            client.infer(np.ones((2, 100)))
        with pytest.raises(ValueError):
            client.infer(np.full((1, 144), np.nan))
        with pytest.raises(veil.Error):
            veil.Client(server.url, "nope", cache_dir=str(tmp_path))
        client.close()
        url = server.url
    with pytest.raises(veil.Error) as e:
        veil.query(url, inputs[:1], cache_dir=str(tmp_path))
    assert e.value.code == "Backend"


def test_server_refuses_bad_model_files(model_file, tmp_path):
    data = model_file.read_bytes()
    with pytest.raises(veil.Error):
        veil.Server([data[:100]])
    with pytest.raises(veil.Error):
        veil.Server([data, data])  # duplicate names
    with pytest.raises(veil.Error):
        veil.Server([str(tmp_path / "missing.veil")])
