"""BlazeFace decoding on real images: faces where the labels say, boxes in frame pixels."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from edge.vision import Detector, Keypoint, load_image


@pytest.fixture(scope="module")
def short_range(manifest):
    return Detector(manifest, manifest.get("blazeface_short_range"))


@pytest.fixture(scope="module")
def full_range(manifest):
    return Detector(manifest, manifest.get("blazeface_full_range"))


def _centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_single_face_images_yield_a_face_at_the_subject(data_dir, short_range):
    """identities.csv lists single-subject images; LFW centres the subject in its 250 px crop
    (BlazeFace boxes sit up to ~32 px off that centre: they frame brow to chin)."""
    rows = list(csv.DictReader(open(data_dir / "identities.csv")))
    found, centred = 0, 0
    lfw = [r for r in rows if r["source"] == "lfw"]
    for row in rows:
        faces = short_range.detect(load_image(data_dir / row["path"]))
        found += bool(faces)
        if row in lfw and faces:
            centred += any(abs(_centre(f.box)[0] - 125) < 40 and abs(_centre(f.box)[1] - 125) < 40 for f in faces)
    assert found >= 0.99 * len(rows), f"a face in only {found} of {len(rows)} images"
    assert centred >= 0.98 * len(lfw), f"subject found at the centre in {centred} of {len(lfw)} LFW images"


def test_montage_faces_land_in_their_labeled_cells(data_dir, full_range):
    rows = list(csv.DictReader(open(data_dir / "group_photos" / "montages.csv")))
    for image in sorted({r["image"] for r in rows}):
        cells = [r for r in rows if r["image"] == image]
        faces = full_range.detect(load_image(data_dir / image))
        hits = []
        for face in faces:
            cx, cy = _centre(face.box)
            inside = [
                c["cell"]
                for c in cells
                if float(c["x0"]) <= cx < float(c["x1"]) and float(c["y0"]) <= cy < float(c["y1"])
            ]
            assert len(inside) == 1, f"{image}: face at ({cx:.0f}, {cy:.0f}) outside every cell"
            hits += inside
        assert len(set(hits)) == len(hits), f"{image}: two faces in one cell"
        assert len(hits) >= 5, f"{image}: only cells {hits} of 6 found"


@pytest.mark.parametrize(
    "crop_xywh", [(0, 0, 910, 600), (200, 0, 500, 1137), (100, 50, 700, 700), (300, 80, 420, 420), (0, 100, 910, 400)]
)
def test_boxes_are_frame_pixels_for_any_aspect_ratio(data_dir, short_range, crop_xywh):
    """Crops of one photo in several shapes find the face at the same place, minus the crop offset."""
    image = load_image(data_dir / "face_recognition/examples/obama.jpg")
    reference = short_range.detect(image)[0]
    x, y, w, h = crop_xywh
    faces = short_range.detect(np.ascontiguousarray(image[y : y + h, x : x + w]))
    assert len(faces) == 1, f"{len(faces)} faces in a {w}x{h} crop"
    size = reference.width
    assert np.abs(faces[0].box + [x, y, x, y] - reference.box).max() < 0.1 * size
    assert np.abs(faces[0].keypoints[:4] + [x, y] - reference.keypoints[:4]).max() < 0.1 * size


def test_scaled_frame_scales_boxes(data_dir, full_range):
    image = load_image(data_dir / "face_recognition/examples/two_people.jpg")
    small = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    big_faces = sorted(full_range.detect(image), key=lambda f: f.box[0])
    small_faces = sorted(full_range.detect(small), key=lambda f: f.box[0])
    assert len(big_faces) == len(small_faces) == 2
    for b, s in zip(big_faces, small_faces, strict=True):
        assert np.abs(b.box - 2 * s.box).max() < 0.1 * b.width


def test_keypoints_order_and_inside_box(data_dir, short_range):
    """Unmirrored photo: the subject's right eye has the smaller x; eyes above nose above mouth."""
    face = short_range.detect(load_image(data_dir / "face_recognition/examples/obama.jpg"))[0]
    kp = face.keypoints
    assert kp[Keypoint.RIGHT_EYE][0] < kp[Keypoint.LEFT_EYE][0]
    assert max(kp[Keypoint.RIGHT_EYE][1], kp[Keypoint.LEFT_EYE][1]) < kp[Keypoint.NOSE_TIP][1] < kp[Keypoint.MOUTH][1]
    x1, y1, x2, y2 = face.box
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in kp[:4])
    assert face.box.dtype == np.float32 and face.keypoints.shape == (6, 2)


def test_empty_frame_has_no_face(short_range, full_range):
    frame = np.zeros((480, 640, 3), np.uint8)
    assert short_range.detect(frame) == [] and full_range.detect(frame) == []


def test_rejects_non_rgb_uint8(short_range):
    with pytest.raises(ValueError, match="uint8 RGB"):
        short_range.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        short_range.detect(np.zeros((10, 10, 3), np.float32))


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 7, 9])
def test_whole_factor_shrink_is_area_averaging_bit_for_bit(factor):
    from edge.vision.detector import shrink_whole

    rng = np.random.default_rng(factor)
    frame = rng.integers(0, 256, (factor * 37 + 2, factor * 53 + 1, 3), dtype=np.uint8)
    used = frame[: factor * 37, : factor * 53]  # a view, as the detector passes it
    expected = cv2.resize(used, (53, 37), interpolation=cv2.INTER_AREA)
    out, scratch = np.empty_like(expected), np.empty_like(used)
    shrink_whole(used, factor, out, scratch)
    np.testing.assert_array_equal(out, expected)


def test_a_frame_and_a_crop_in_turn_keep_their_buffers_and_their_faces(manifest, data_dir):
    """Refinement alternates the camera frame's size with a crop's: neither reallocates the other's."""
    detector = Detector(manifest, manifest.get("blazeface_full_range"))
    image = load_image(data_dir / "face_recognition/examples/two_people.jpg")
    crop, other = image[: image.shape[0] // 2], image[:, : image.shape[1] // 3]
    first = detector.detect(image)
    kept = detector._letterboxes[image.shape]
    detector.detect(crop)
    again = detector.detect(image)
    assert detector._letterboxes[image.shape] is kept
    assert [f.box.tolist() for f in again] == [f.box.tolist() for f in first]
    detector.detect(crop)
    detector.detect(other)  # a third size: the least recent (the whole image) goes
    assert list(detector._letterboxes) == [crop.shape, other.shape]


def test_nms_plain_and_weighted_keep_one_face_per_person(manifest, data_dir):
    image = load_image(data_dir / "face_recognition/examples/two_people.jpg")
    for weighted in (True, False):
        det = Detector(manifest, manifest.get("blazeface_full_range"), weighted_nms=weighted)
        assert len(det.detect(image)) == 2


def test_tiles_cover_the_frame_with_overlap():
    from edge.vision.tiling import tile_boxes

    assert tile_boxes(1080, 1920, 1080) == [(0, 0, 1080), (840, 0, 1080)]
    assert tile_boxes(360, 640, 1080) == [(0, 0, 640)]  # fits: one pass, letterboxed
    assert tile_boxes(1080, 1920, 0) == [(0, 0, 1920)]  # tiling off
    tiles = tile_boxes(2160, 3840, 1080)
    covered = np.zeros((2160, 3840), bool)
    for x, y, side in tiles:
        assert side == 1080 and x + side <= 3840 and y + side <= 2160
        covered[y : y + side, x : x + side] = True
    assert covered.all()
    xs = sorted({x for x, _, _ in tiles})
    assert np.diff(xs).max() <= 1080 - 216  # neighbours overlap by 20% or more


@pytest.fixture(scope="module")
def crowd(data_dir, short_range):
    """Eight LFW photos (faces about 110 px) pasted into a grey 1920x1080 frame, one of them in
    the overlap of the two tiles, with each face's keypoints as short range finds them in its photo."""
    rows = [r for r in csv.DictReader(open(data_dir / "identities.csv")) if r["source"] == "lfw"]
    photos = list(dict.fromkeys(r["path"] for r in rows))[:40:5]
    frame = np.full((1080, 1920, 3), 90, np.uint8)
    truth = []
    for i, (path, x) in enumerate(zip(photos, [60, 420, 900, 1300, 1650, 200, 700, 1100], strict=True)):
        image, y = load_image(data_dir / path), 150 if i < 5 else 650
        frame[y : y + 250, x : x + 250] = image
        truth.append(short_range.detect(image)[0].keypoints[:4] + [x, y])
    return frame, truth


def test_tiling_finds_small_faces_a_whole_frame_pass_misses_and_each_once(crowd, full_range):
    from edge.vision.tiling import TiledDetector

    frame, truth = crowd
    whole, tiled = full_range.detect(frame), TiledDetector(full_range, 1080).detect(frame)
    assert len(whole) <= 2 and len(tiled) >= 6, (len(whole), len(tiled))
    nearest = [min(range(len(truth)), key=lambda i: np.abs(truth[i].mean(0) - _centre(f.box)).max()) for f in tiled]
    assert len(set(nearest)) == len(nearest), "a face found twice"
    assert any(840 < _centre(f.box)[0] < 1080 for f in tiled), "the face in the overlap was lost"
    assert [f.score for f in tiled] == sorted((f.score for f in tiled), reverse=True)


def test_refine_sharpens_keypoints_of_faces_small_in_the_input(crowd, full_range, data_dir):
    from edge.vision.tiling import TiledDetector

    frame, truth = crowd
    tiled = TiledDetector(full_range, 1080)
    coarse_error, refined_error = [], []
    for face in tiled.detect(frame):
        kp = truth[min(range(len(truth)), key=lambda i: np.abs(truth[i].mean(0) - _centre(face.box)).max())]
        coarse_error.append(np.abs(face.keypoints[:4] - kp).max())
        refined_error.append(np.abs(tiled.refine(frame, face).keypoints[:4] - kp).max())
    assert np.median(refined_error) < 0.6 * np.median(coarse_error), (coarse_error, refined_error)
    portrait = load_image(data_dir / "face_recognition/examples/obama.jpg")  # a face of 300 px
    face = full_range.detect(portrait)[0]
    assert full_range.refine(portrait, face) is face  # big enough in the input already
