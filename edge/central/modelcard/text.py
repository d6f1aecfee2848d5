"""The model card's fixed prose: intended use, what the model is not fit for, the data's limits,
and why the cohort model is what it is (figures measured on DEV when it was chosen)."""

INTENDED_USE = """\
- Alerting a person on duty when someone **enrolled on purpose** (a small, consented watchlist,
  e.g. staff or an access list) passes one camera. Every match is an alert for a person to
  review, never a verdict: an alert says "look at this", not "this is X".
- Sites whose operators have read the rates below for the groups of people who pass their camera,
  and chose the threshold (a target false match rate) for the worst of those groups."""

NOT_FIT_FOR = """\
- **Identifying people who are not enrolled** ("who is this?"), searching footage or the web for
  a face, or building a gallery of passers-by. The device keeps nothing of unenrolled people.
- **Decisions without human review**: arrest, denial of entry, service, employment or benefits,
  evidence in any proceeding.
- **Surveillance of crowds** or public spaces, tracking people across cameras or over time.
- **Minors**: no child is in the evaluation data; the error rates for children are unknown.
- **Groups this card cannot speak for**: groups flagged "not sizeable" below (rates unknown),
  and groups absent from the data altogether.
- Inferring gender, ethnicity, age or emotion: the model does none of this; the group labels
  below are used only to measure error rates.
- **Large galleries** without reading the expected false alerts below: each enrolled person is
  one more chance for a stranger to be falsely matched."""

DATA_LIMITS = """\
- The DEV part of `../shared/data` only (news photos of public figures from LFW plus sample
  images of open-source face libraries). Held-out data lives elsewhere; the thresholds here were
  **calibrated and measured on the same images**, so the rates are in-sample and likely
  optimistic.
- Gender and ethnicity labels are **curator-assigned** from public biographies (gender from
  the LFW name lists, binary), **not self-reported**, and ethnicity buckets are coarse.
- The LFW images there are **250x250 grayscale** (the mirror re-encoded them), close-up news
  portraits. A camera sees colour, motion blur, other poses and light: expect other rates there.
- The calibration and these figures use the still-image detector (`models.stills_detector`);
  the camera loop uses the full-range detector.
- Some groups are tiny (one or two identities); they are listed, flagged, and no rate of theirs
  should be read as a property of the group.
- Impostor pairs are formed within one source only (one person can carry other labels in other
  sources)."""

COHORT_CHOICE = """\
The cohort model summarises the descriptors of the LFW cohort (`../shared/data/lfw_cohort`, people in
neither DEV nor the held-out set) as **K = {k} k-means centroids with member counts, every centroid
the average of at least {min_members} people** (smaller clusters are dissolved into their neighbours), so it
holds no individual's descriptor. A template's scale is the distance within which **a share of
{quantile:g}** of the cohort lies, read off the centroids weighted by their counts, divided by the cohort's
own median of it: 1.0 is typical crowding, below 1 a stricter threshold. K and the share were chosen
on DEV with the present quality gate, by the misses at the worst-group target, among the settings
below (`scripts/build_cohort.py --grid`). A larger K misses less on DEV but fits it closer: a higher
overall FMR, a worst group at the limit of what its comparisons can show, and centroids of fewer
people, so it is less trustworthy on people nobody tuned on."""
