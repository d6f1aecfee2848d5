"""`edge enroll` and `edge gallery`: gated enrollment, listing, removal, export, import."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge.cli import main


def run(capsys, *args) -> tuple[int, dict | None, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if out.out.strip() else None), out.err


@pytest.fixture
def blank(tmp_path):
    path = tmp_path / "blank.png"
    cv2.imwrite(str(path), np.full((300, 300, 3), 128, np.uint8))
    return path


def test_enroll_gates_each_photo(data_dir, tmp_path, blank, capsys):
    gallery = tmp_path / "g.sqlite"
    examples = data_dir / "face_recognition" / "examples"
    code, summary, _ = run(
        capsys,
        "enroll",
        "--gallery",
        gallery,
        "--name",
        "Barack Obama",
        examples / "obama.jpg",
        examples / "obama2.jpg",
        examples / "two_people.jpg",
        blank,
    )
    assert code == 0 and summary["identity_id"] == "barack_obama"
    assert len(summary["enrolled"]) == 2 and summary["templates"] == 2
    reasons = {r["image"]: r["reason"] for r in summary["rejected"]}
    assert "2 faces found" in reasons[str(examples / "two_people.jpg")]
    assert "no face found" in reasons[str(blank)]


def test_enroll_rejects_small_and_turned_faces(data_dir, tmp_path, capsys):
    small = tmp_path / "small.jpg"
    image = cv2.imread(str(data_dir / "face_recognition/examples/obama.jpg"))
    cv2.imwrite(str(small), cv2.resize(image, (80, 100), interpolation=cv2.INTER_AREA))
    code, summary, _ = run(
        capsys,
        "enroll",
        "--gallery",
        tmp_path / "g.sqlite",
        "--name",
        "x",
        small,
        data_dir / "lfw/Recep_Tayyip_Erdogan/Recep_Tayyip_Erdogan_0004.jpg",  # yaw -0.73, a half profile
    )
    reasons = " ".join(r["reason"] for r in summary["rejected"])
    assert code == 1 and "no image passed" in summary["error"]
    assert "too small" in reasons or "no face" in reasons
    assert "turned away" in reasons
    assert not (tmp_path / "g.sqlite").exists(), "a failed enrollment must not create the gallery"


def test_list_remove_export(data_dir, tmp_path, capsys):
    gallery = tmp_path / "g.sqlite"
    lfw = data_dir / "lfw"
    assert (
        run(
            capsys,
            "enroll",
            "--gallery",
            gallery,
            "--name",
            "Colin Powell",
            lfw / "Colin_Powell/Colin_Powell_0001.jpg",
            lfw / "Colin_Powell/Colin_Powell_0002.jpg",
        )[0]
        == 0
    )
    assert (
        run(
            capsys, "enroll", "--gallery", gallery, "--name", "Li Peng", "--id", "lp", lfw / "Li_Peng/Li_Peng_0001.jpg"
        )[0]
        == 0
    )
    code, listing, _ = run(capsys, "gallery", "list", "--gallery", gallery)
    assert code == 0 and listing["identities"] == 2 and listing["templates"] == 3
    assert "embedding" not in json.dumps(listing)
    code, exported, _ = run(capsys, "gallery", "export", "--gallery", gallery, "--out", tmp_path / "bundle.json")
    assert code == 0 and exported["version"] == listing["version"] and (tmp_path / "bundle.json").is_file()
    code, removed, _ = run(capsys, "gallery", "remove", "--gallery", gallery, "--id", "colin_powell")
    assert code == 0 and removed["templates_removed"] == 2 and removed["version"] != listing["version"]
    assert [p["identity_id"] for p in run(capsys, "gallery", "list", "--gallery", gallery)[1]["people"]] == ["lp"]
    code, _, err = run(capsys, "gallery", "remove", "--gallery", gallery, "--id", "nobody")
    assert code == 1 and "nobody" in err


def test_gallery_of_another_embedder_is_refused(data_dir, tmp_path, capsys, monkeypatch):
    gallery = tmp_path / "g.sqlite"
    assert (
        run(capsys, "enroll", "--gallery", gallery, "--name", "x", data_dir / "lfw/Colin_Powell/Colin_Powell_0001.jpg")[
            0
        ]
        == 0
    )
    monkeypatch.setenv("EDGE_MODELS__EMBEDDER", "dlib_resnet_v1_fp16")
    code, _, err = run(capsys, "gallery", "list", "--gallery", gallery)
    assert code == 1 and "dlib_resnet_v1_fp16" in err and "dlib_resnet_v1_int8_mirror" in err
    assert "set models.embedder to dlib_resnet_v1_int8_mirror to keep using that one" in err and err.count("\n") == 1


def test_a_gallery_enrolled_single_pass_is_refused_by_the_mirror_averaged_default(
    data_dir, tmp_path, capsys, monkeypatch
):
    """The same model file, read another way: its descriptors are not comparable, so the id decides."""
    gallery = tmp_path / "g.sqlite"
    monkeypatch.setenv("EDGE_MODELS__EMBEDDER", "dlib_resnet_v1_int8")
    assert (
        run(capsys, "enroll", "--gallery", gallery, "--name", "x", data_dir / "lfw/Colin_Powell/Colin_Powell_0001.jpg")[
            0
        ]
        == 0
    )
    monkeypatch.delenv("EDGE_MODELS__EMBEDDER")
    code, _, err = run(capsys, "gallery", "list", "--gallery", gallery)
    assert (
        code == 1
        and "built with embedder dlib_resnet_v1_int8 " in err
        and "set models.embedder to dlib_resnet_v1_int8 " in err
    )


@pytest.fixture
def people_folder(data_dir, tmp_path, blank):
    """people/<Name>/photos, linked from ../shared/data (nothing copied)."""
    folder = tmp_path / "people"
    lfw = data_dir / "lfw"
    layout = {
        "Colin Powell": [lfw / "Colin_Powell/Colin_Powell_0001.jpg", lfw / "Colin_Powell/Colin_Powell_0002.jpg"],
        "Li Peng": [lfw / "Li_Peng/Li_Peng_0001.jpg", lfw / "Li_Peng/Li_Peng_0003.jpg"],  # 0003: two faces
        "Nobody": [blank],
    }
    for name, photos in layout.items():
        (folder / name).mkdir(parents=True)
        for photo in photos:
            (folder / name / photo.name).symlink_to(photo)
    (folder / "notes.txt").write_text("not a person")
    (folder / "Empty").mkdir()
    return folder


def test_enroll_a_folder_of_people(people_folder, tmp_path, capsys):
    gallery = tmp_path / "g.sqlite"
    code, summary, _ = run(capsys, "enroll", "--gallery", gallery, "--folder", people_folder)
    assert code == 0
    assert (summary["people_enrolled"], summary["photos"], summary["photos_rejected"]) == (2, 5, 2)
    people = {p["name"]: p for p in summary["people"]}
    assert list(people) == ["Colin Powell", "Li Peng", "Nobody"]  # "Empty" has no photo
    assert people["Colin Powell"]["identity_id"] == "colin_powell" and people["Colin Powell"]["templates"] == 2
    assert people["Li Peng"]["templates"] == 1
    assert "2 faces found" in people["Li Peng"]["rejected"][0]["reason"]
    assert "templates" not in people["Nobody"] and "no face found" in people["Nobody"]["rejected"][0]["reason"]
    code, listing, _ = run(capsys, "gallery", "list", "--gallery", gallery)
    assert listing["version"] == summary["gallery_version"]
    assert [(p["identity_id"], p["templates"]) for p in listing["people"]] == [("colin_powell", 2), ("li_peng", 1)]


def test_enroll_folder_errors_change_nothing(people_folder, tmp_path, capsys):
    gallery = tmp_path / "g.sqlite"
    code, _, err = run(capsys, "enroll", "--gallery", gallery, "--folder", people_folder, "--name", "x")
    assert code == 1 and "--folder takes no --name" in err
    code, _, err = run(capsys, "enroll", "--gallery", gallery, "--folder", people_folder / "Empty")
    assert code == 1 and "no subfolder with photos" in err
    assert not gallery.exists()
    only_nobody = tmp_path / "only"
    (only_nobody / "Nobody").mkdir(parents=True)
    (only_nobody / "Nobody" / "blank.png").symlink_to(people_folder / "Nobody" / "blank.png")
    other = tmp_path / "other.sqlite"
    code, summary, _ = run(capsys, "enroll", "--gallery", other, "--folder", only_nobody)
    assert code == 1 and summary["people_enrolled"] == 0 and "gallery was not changed" in summary["error"]
    assert not other.exists()
    code, _, err = run(capsys, "enroll", "--gallery", other, "--name", "x")
    assert code == 1 and "give --name and photos" in err


def test_enroll_folder_refuses_name_clashes_before_adding_anyone(people_folder, tmp_path, capsys):
    gallery = tmp_path / "g.sqlite"
    lfw = people_folder / "Colin Powell"
    assert (
        run(
            capsys,
            "enroll",
            "--gallery",
            gallery,
            "--name",
            "Someone Else",
            "--id",
            "li_peng",
            lfw / "Colin_Powell_0001.jpg",
        )[0]
        == 0
    )
    before = run(capsys, "gallery", "list", "--gallery", gallery)[1]
    code, _, err = run(capsys, "enroll", "--gallery", gallery, "--folder", people_folder)
    assert code == 1 and "'li_peng' is enrolled as 'Someone Else', not 'Li Peng'" in err and "nothing added" in err
    assert run(capsys, "gallery", "list", "--gallery", gallery)[1] == before  # Colin Powell not added either
    (people_folder / "li peng").mkdir()
    (people_folder / "li peng" / "x.jpg").symlink_to(lfw / "Colin_Powell_0001.jpg")
    code, _, err = run(capsys, "enroll", "--gallery", tmp_path / "other.sqlite", "--folder", people_folder)
    assert code == 1 and "both make the id 'li_peng'" in err


def synthetic_gallery(path, embedder, people: list[str]):
    """A gallery of `people`, one random template each, made through the store (no photos)."""
    from support_cohort import cohort_for

    from edge.gallery import GalleryStore

    with GalleryStore.create(path, embedder.model_id, embedder.sha256, scaler=cohort_for(embedder.model_id)) as store:
        for i, name in enumerate(people):
            v = np.random.default_rng(i).normal(size=(1, 128)).astype(np.float32)
            store.add(name, name, v / np.linalg.norm(v) * 0.5)
        return store.version


def test_import_replaces_the_gallery_atomically_with_a_bundle(manifest, tmp_path, capsys):
    embedder = manifest.get(manifest.default_embedder, "embedder")
    source, target = tmp_path / "source.sqlite", tmp_path / "target.sqlite"
    wanted = synthetic_gallery(source, embedder, ["ada", "grace"])
    synthetic_gallery(target, embedder, ["someone"])
    assert run(capsys, "gallery", "export", "--gallery", source, "--out", tmp_path / "bundle.json")[0] == 0
    leftover = tmp_path / ".target.sqlite.dead.incoming"  # what a killed import leaves
    leftover.write_bytes(b"half a gallery")
    before = target.stat().st_ino
    code, summary, _ = run(capsys, "gallery", "import", "--gallery", target, tmp_path / "bundle.json")
    assert code == 0 and summary["version"] == wanted and summary["identities"] == 2
    assert wanted in summary["running_device"]
    assert target.stat().st_ino != before, "not a new file renamed over the old one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json", "source.sqlite", "target.sqlite"]
    listing = run(capsys, "gallery", "list", "--gallery", target)[1]
    assert listing["version"] == wanted and [p["identity_id"] for p in listing["people"]] == ["ada", "grace"]
    assert target.stat().st_mode & 0o777 == 0o600
    code, created, _ = run(capsys, "gallery", "import", "--gallery", tmp_path / "new.sqlite", tmp_path / "bundle.json")
    assert code == 0 and created["version"] == wanted


def test_import_of_a_damaged_or_foreign_bundle_changes_nothing(manifest, tmp_path, capsys, monkeypatch):
    embedder = manifest.get(manifest.default_embedder, "embedder")
    source, target = tmp_path / "source.sqlite", tmp_path / "target.sqlite"
    synthetic_gallery(source, embedder, ["ada", "grace"])
    synthetic_gallery(target, embedder, ["someone"])
    bundle = tmp_path / "bundle.json"
    assert run(capsys, "gallery", "export", "--gallery", source, "--out", bundle)[0] == 0
    original = target.read_bytes()
    edited = json.loads(bundle.read_text())
    edited["identities"][0]["name"] = "Mallory"
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    code, _, err = run(capsys, "gallery", "import", "--gallery", target, tmp_path / "edited.json")
    assert code == 1 and "edited.json" in err and "does not match its content" in err
    monkeypatch.setenv("EDGE_MODELS__EMBEDDER", "dlib_resnet_v1_fp16")
    code, _, err = run(capsys, "gallery", "import", "--gallery", target, bundle)
    assert code == 1 and "dlib_resnet_v1_fp16" in err and "dlib_resnet_v1_int8_mirror" in err
    assert target.read_bytes() == original
    assert {p.name for p in tmp_path.iterdir()} == {"bundle.json", "edited.json", "source.sqlite", "target.sqlite"}
