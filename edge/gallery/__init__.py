"""The local gallery of enrolled people: templates in SQLite, open-set matching, versions.

Embeddings only, never images. Distances are Euclidean between 128-d float32 descriptors
(dlib's face descriptor): lower is more alike, and a probe matches only when its nearest
template is within the threshold. Depends on numpy and the standard library only.

    store = GalleryStore.open(path, embedder.model_id, embedder.sha256, scaler=cohort)
    store.add("p-0042", "Ada", descriptors, qualities, ["ada_1.jpg", "ada_2.jpg"])
    matcher = store.matcher()               # immutable snapshot, rebuilt after changes
    matcher.match(probe, 0.41)              # Match | None: distance <= 0.41 * the template's scale

Each template carries its own scale (how crowded the descriptor space is around it, from a
cohort of strangers: `edge.gallery.scales`), and its threshold is the knob times that scale;
`store.matcher(per_template=False)` matches with one global threshold instead.
"""

from edge.gallery.bundle import FORMAT as BUNDLE_FORMAT
from edge.gallery.bundle import Bundle, encode_bundle, parse_bundle, read_bundle
from edge.gallery.embedding import EMBEDDING_DIM
from edge.gallery.errors import (
    GalleryBundleError,
    GalleryCorrupt,
    GalleryError,
    GalleryExists,
    GalleryModelMismatch,
    GalleryNotFound,
    GallerySchemaError,
    InvalidEmbedding,
    InvalidInput,
    UnknownIdentity,
)
from edge.gallery.fields import check_identity_id, check_name
from edge.gallery.matcher import Match, Matcher, Nearest
from edge.gallery.replace import remove_leftovers, replace_gallery
from edge.gallery.scales import TemplateScaler
from edge.gallery.store import GalleryStore, IdentitySummary, empty_matcher

__all__ = [
    "BUNDLE_FORMAT",
    "Bundle",
    "EMBEDDING_DIM",
    "GalleryBundleError",
    "GalleryCorrupt",
    "GalleryError",
    "GalleryExists",
    "GalleryModelMismatch",
    "GalleryNotFound",
    "GallerySchemaError",
    "GalleryStore",
    "IdentitySummary",
    "InvalidEmbedding",
    "InvalidInput",
    "Match",
    "Matcher",
    "Nearest",
    "TemplateScaler",
    "UnknownIdentity",
    "check_identity_id",
    "check_name",
    "empty_matcher",
    "encode_bundle",
    "parse_bundle",
    "read_bundle",
    "remove_leftovers",
    "replace_gallery",
]
