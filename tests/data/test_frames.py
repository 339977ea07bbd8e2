"""Frame columns, decoding, temporal sampling, transforms, VideoStore, load_annotations."""
import base64
import io
import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from lavender.errors import DataError
from lavender.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ClipTransform
from lavender.data.sampling import clip_starts, extraction_indices, temporal_sample
from lavender.data.codec import decode_frame, decode_jpegs, encode_frame, file_frame_start, frame_fields, frame_start
from lavender.data.tsv import TSVFile, write_tsv
from lavender.data.video_store import VideoStore
from lavender.data.annotations import load_annotations


class FixedRng:
    """randint always returns `v` (clipped to the range)."""

    def __init__(self, v):
        self.v = v

    def randint(self, a, b):
        return min(max(self.v, a), b)

    def choice(self, seq):
        return seq[0]


def jpeg_b64(h=24, w=32, seed=0, fmt="JPEG"):
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


# ------------------------------------------------------------------ sampling
def test_temporal_sample_spec_examples():
    assert temporal_sample(32, 4, train=False) == [0, 10, 21, 31]
    for s in range(8):
        assert temporal_sample(32, 4, train=True, rng=FixedRng(s)) == [s, s + 8, s + 16, min(s + 24, 31)]
    assert temporal_sample(5, 5, True) == [0, 1, 2, 3, 4]
    assert temporal_sample(9, 1, False) == [4]
    assert temporal_sample(8, 5, False) == [0, 2, 4, 5, 7]  # round(3.5) == 4 (banker's)


def test_temporal_sample_short_rows_pad():
    assert temporal_sample(3, 5, True) == [0, 1, 2, 2, 2]
    assert temporal_sample(1, 4, False) == [0, 0, 0, 0]
    assert temporal_sample(3, 5, False, pad=False) == [0, 1, 2]
    assert temporal_sample(1, 1, False) == [0]
    with pytest.raises(ValueError):
        temporal_sample(0, 4, False)


def test_extraction_indices():
    assert extraction_indices(20, 8) == [2, 4, 6, 8, 11, 13, 15, 17]
    assert extraction_indices(3, 5) == [0, 1, 1, 2, 2]


# ------------------------------------------------------------------ columns + decode
def test_original_layout_round_trips_bytes(tmp_path):
    frames = [jpeg_b64(seed=i) for i in range(4)]
    p = tmp_path / "x.tsv"
    p.write_bytes(("v1\t" + "\t".join(frames) + "\n").encode() + ("v2\t" + "\t".join(frames[:2]) + "\n").encode())
    (tmp_path / "x.lineidx").write_text(f"0\n{len(('v1' + chr(9) + chr(9).join(frames) + chr(10)).encode())}\n")
    t = TSVFile(p)
    assert file_frame_start(p) == 1  # tools layout: frames from column 1
    assert frame_fields(t.row(0), 1) == frames and frame_fields(t.row(1), 1) == frames[:2]
    down = [["v1", "extra"] + frames, ["v2", "x"] + frames[:2]]
    assert frame_start(down) == 2  # downstream layout: column 1 is skipped
    assert frame_start(down[:1], frame_column=3) == 3 and frame_start([], "auto") == 1
    for i, f in enumerate(frame_fields(t.row(0), 1)):
        raw = base64.b64decode(f)
        assert raw == base64.b64decode(frames[i])
        assert np.array_equal(decode_frame(f), np.asarray(Image.open(io.BytesIO(raw)).convert("RGB")))


def test_png_and_encode():
    png = jpeg_b64(fmt="PNG")
    assert png.startswith("iVBOR")
    img = decode_frame(png)
    assert img.shape == (24, 32, 3) and img.dtype == np.uint8
    b = encode_frame(img)
    assert b.startswith("/9j/") and decode_frame(b).shape == (24, 32, 3)


def test_no_frames_and_corrupt():
    with pytest.raises(DataError, match="no base64 JPEG/PNG frames.*'k'"):
        frame_start([["k", "abc", "def"]])
    with pytest.raises(ValueError, match="frame_column"):
        frame_start([["k", "abc"]], frame_column=0)
    with pytest.raises(DataError, match=r"invalid base64.*file f\.tsv, key 'k', frame 3"):
        decode_frame("/9j/@@@@", file="f.tsv", key="k", index=3)
    good = base64.b64decode(jpeg_b64())
    truncated = base64.b64encode(good[: len(good) // 2]).decode()
    with pytest.raises(DataError, match=r"cannot decode image.*key 'k', frame 1"):
        decode_frame(truncated, key="k", index=1)


# ------------------------------------------------------------------ transforms
FR = [np.random.default_rng(i).integers(0, 255, (60, 80, 3), dtype=np.uint8) for i in range(3)]


@pytest.mark.parametrize("name", ["img_rand_crop", "img_center_crop", "pad_resize", "vid_rand_crop"])
@pytest.mark.parametrize("train", [True, False])
def test_transform_shapes(name, train):
    x = ClipTransform(32, [name], train)(FR, random.Random(0))
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32


def test_transform_string_and_unknown():
    assert ClipTransform(32, "img_rand_crop", True).names == ["img_rand_crop"]  # tgif configs
    with pytest.raises(ValueError, match="unknown img_transform"):
        ClipTransform(32, ["flip"], True)


def test_normalisation_and_center_crop():
    gray = [np.full((40, 60, 3), 128, np.uint8)]
    x = ClipTransform(32, ["img_rand_crop"], False)(gray)
    want = (128 / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(x[0, :, 5, 5], want, atol=1e-4)


def test_crop_consistency():
    # a horizontal ramp: the crop offset shows in the first column's value
    ramp = np.tile(np.arange(0, 255, 2, dtype=np.uint8)[None, :, None], (32, 1, 3))
    clip = [ramp] * 6
    rng = random.Random(1)
    v = ClipTransform(32, ["vid_rand_crop"], True)(clip, rng)
    assert all(torch.equal(v[0], v[i]) for i in range(6))
    p = ClipTransform(32, ["img_rand_crop"], True)(clip, rng)
    assert len({round(float(p[i, 0, 0, 0]), 4) for i in range(6)}) > 1  # per-frame crops differ


# ------------------------------------------------------------------ VideoStore + annotations
@pytest.fixture
def store_dir(tmp_path):
    rows = [["v0"] + [jpeg_b64(seed=i) for i in range(6)],
            ["v1"] + [jpeg_b64(seed=i) for i in range(2)],
            ["bad", jpeg_b64(), base64.b64encode(b"\xff\xd8garbage\xff\xd9").decode()]]
    write_tsv(tmp_path / "img_toy.tsv", rows, id2lineidx_path=str(tmp_path / "img_toy.id2lineidx.pkl"))
    ann = {"train": [{"video": "v0", "question": "q"}, {"video": "v1"}, {"video": "gone"}],
           "val": [{"video": "v0"}]}
    (tmp_path / "txt_toy.json").write_text(json.dumps(ann))
    return tmp_path


def test_video_store_clips(store_dir):
    s = VideoStore(store_dir, "toy", size_frame=4, size_img=16, img_transform=["img_rand_crop"])
    assert s.clip("v0", train=True).shape == (4, 3, 16, 16)
    c = s.clip("v1", train=False)
    assert c.shape == (4, 3, 16, 16) and torch.equal(c[1], c[3])  # 2 frames padded to 4
    with pytest.raises(DataError, match=r"img_toy\.tsv.*key 'bad', frame 1"):
        s.clip("bad", train=False)
    with pytest.raises(DataError, match=r"key 'zzz' not found in .*img_toy\.tsv"):
        s.clip("zzz", train=False)


def test_video_store_skip_bad(store_dir):
    s = VideoStore(store_dir, "toy", 4, 16, "img_center_crop", skip_bad=True)
    assert s.clip("bad", train=True) is None and s.clip("zzz", False) is None
    assert s.n_skipped == 2 and set(s.skip_reasons) == {"bad", "zzz"}
    assert "frame 1" in s.skip_reasons["bad"]


def test_load_annotations(store_dir):
    p = store_dir / "txt_toy.json"
    assert len(load_annotations(p, "train")) == 3
    with pytest.raises(DataError, match=r"txt_toy\.json has no split 'test'.*'train', 'val'"):
        load_annotations(p, "test")
    s = VideoStore(store_dir, "toy", 4, 16)
    with pytest.raises(DataError, match=r"1 item\(s\) / 1 video\(s\) not in .*first missing: \['gone'\]"):
        load_annotations(p, "train", store=s)
    s2 = VideoStore(store_dir, "toy", 4, 16, skip_bad=True)
    assert [it["video"] for it in load_annotations(p, "train", store=s2, skip_bad=True)] == ["v0", "v1"]
    assert s2.n_skipped == 1
    (store_dir / "txt_pre.json").write_text(json.dumps({"train": {"v0": ["a cap"]}, "val": {}}))
    assert load_annotations(store_dir / "txt_pre.json", "train") == [{"video": "v0", "caption": ["a cap"]}]
    with pytest.raises(DataError, match="missing frame store"):
        VideoStore(store_dir, "nope", 4, 16)


def test_video_store_in_dataloader(store_dir):
    from lavender.data.collate import collate_dicts, seed_worker

    s = VideoStore(store_dir, "toy", 3, 16)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            v = ["v0", "v1"][i % 2]
            return {"video": s.clip(v, train=True), "id": v, "i": i}

    dl = torch.utils.data.DataLoader(DS(), batch_size=4, num_workers=2, worker_init_fn=seed_worker,
                                     collate_fn=collate_dicts, multiprocessing_context="fork")
    b = list(dl)
    assert b[0]["video"].shape == (4, 3, 3, 16, 16) and b[1]["i"].tolist() == [4, 5, 6, 7]


def test_clip_starts_for_multi_clip_testing():
    """docs/original.md#multi-clip-testing: C = ceil(N/F) clips at starts 0..C-1 with the train rule's end; one clip when N <= F."""
    assert clip_starts(32, 4) == list(range(8)) and clip_starts(5, 5) == [None] and clip_starts(3, 5) == [None]
    for s in clip_starts(32, 4):
        assert temporal_sample(32, 4, train=False, start=s) == temporal_sample(32, 4, train=True, rng=FixedRng(s))
    assert temporal_sample(32, 4, train=False, start=7) == [7, 15, 23, 31]
    assert temporal_sample(5, 2, train=False, start=2) == [2, 4]


def test_encoded_frames_decode_like_the_cpu_path(store_dir):
    """The GPU-decode route (encoded frames -> decode_jpegs -> the same transform on tensors), run on CPU."""
    s = VideoStore(store_dir, "toy", 4, 16, ["img_rand_crop"])
    enc = s.encoded_frames("v0", train=True, rng=random.Random(3))
    assert len(enc) == 4 and all(e.dtype == torch.uint8 and e.dim() == 1 for e in enc)
    fields = s.frame_strings("v0")
    idx = temporal_sample(6, 4, True, random.Random(3))
    assert [bytes(e.numpy()) for e in enc] == [base64.b64decode(fields[i]) for i in idx]
    frames = decode_jpegs(enc, "cpu")
    ref = s.frames("v0", train=True, rng=random.Random(3))
    assert all(f.shape == (3, 24, 32) for f in frames)
    # two JPEG decoders may differ by a few levels per pixel
    assert all((f.permute(1, 2, 0).int() - torch.from_numpy(r).int()).abs().float().mean() < 2
               for f, r in zip(frames, ref))
    tf = ClipTransform(16, ["img_rand_crop"], train=True)
    from_tensors = tf([torch.from_numpy(r).permute(2, 0, 1) for r in ref], random.Random(5))
    assert torch.equal(from_tensors, tf(ref, random.Random(5)))  # tensor (3,H,W) input = array (H,W,3) input
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs a CUDA GPU"):
            decode_jpegs(enc, "cuda")
