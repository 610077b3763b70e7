"""Load a data set once, cache it decoded, and cut the same subsets for every backend.

Sources:
  * ``{"kind": "keras"}``: ``keras.datasets.cifar10`` (downloads; for users online).
  * ``{"kind": "path", "path": ...}``: an image-folder data set, as a folder or a
    ``.tar.gz``, laid out ``train/<class>/<image>`` and ``test/<class>/<image>``;
    classes are the sorted folder names (CIFAR-10's own label order).
  * ``{"kind": "shared", "path": ...}``: the same, relative to the shared folder.

The first job to need a data set decodes it into ``<cache>/datasets/<key>/`` as
plain ``.npy`` files, holding a lock so that jobs starting together decode it
once; the others wait and then memory-map the result. The folder is renamed
into place complete, so a half-decoded cache is never read.
"""
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import tarfile
import time
import unicodedata

import numpy as np

from harness.workload import layout
from harness.workload.errors import DataError

CACHE_FORMAT = 1
SPLITS = ("train", "test")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".webp", ".tif", ".tiff")


class Arrays(object):
    """Decoded images (uint8, NHWC) and integer labels for every split."""

    def __init__(self, x, y, classes, key, content_hash):
        self.x = x
        self.y = y
        self.classes = classes
        self.key = key
        self.content_hash = content_hash


# -- where the data comes from ---------------------------------------------------
def resolve_source(spec, shared_root):
    """Return (kind, absolute path or None) for a run.json dataset spec."""
    kind = spec.get("kind")
    if kind == "keras":
        return "keras", None
    if kind == "path":
        return "path", spec["path"]
    if kind == "shared":
        return "path", os.path.join(shared_root, spec["path"])
    raise DataError("unknown data set kind %r in run.json; use keras, path or shared" % (kind,))


def source_key(kind, path):
    """A short name for the source's content: the cache folder's name."""
    if kind == "keras":
        return "keras-cifar10"
    if not os.path.exists(path):
        raise DataError("data set %s does not exist; pass --dataset with a folder or .tar.gz "
                        "laid out train/<class>/*.jpg and test/<class>/*.jpg, or --dataset keras "
                        "to download CIFAR-10" % path)
    digest = hashlib.sha256()
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                try:
                    stat = os.stat(full)
                except OSError as err:
                    raise DataError("data set %s holds %s, which cannot be read (%s%s); remove or fix it"
                                    % (path, os.path.relpath(full, path), err.strerror,
                                       ": a dangling symbolic link" if os.path.islink(full) else ""))
                digest.update(("%s\0%d\0%d\n" % (os.path.relpath(full, path), stat.st_size,
                                                 stat.st_mtime_ns)).encode("utf-8"))
        tag = "dir"
    else:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        tag = "file"
    base = os.path.basename(os.path.normpath(path)).split(".")[0] or "data"
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in base)[:40]
    return "%s-%s-%s" % (safe, tag, digest.hexdigest()[:16])


# -- the cache -------------------------------------------------------------------
def load(spec, shared_root, cache_root, say=None):
    """Decoded arrays for a data set, decoding at most once per cache."""
    kind, path = resolve_source(spec, shared_root)
    key = source_key(kind, path)
    folder = layout.dataset_cache_dir(cache_root, key)
    if not _complete(folder):
        _makedirs(os.path.dirname(folder))
        lock_path = folder + ".lock"
        with open(lock_path, "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                if not _complete(folder):
                    if say:
                        say("decoding data set into cache %s" % folder)
                    x, y, classes = _decode(kind, path)
                    _write_cache(folder, x, y, classes)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return _read_cache(folder, key)


def _complete(folder):
    return os.path.isfile(os.path.join(folder, "meta.json"))


def _makedirs(path):
    try:
        os.makedirs(path)
    except OSError as err:
        if err.errno != errno.EEXIST:
            raise


def _write_cache(folder, x, y, classes):
    staging = "%s.partial-%d-%d" % (folder, os.getpid(), int(time.time() * 1000))
    _makedirs(staging)
    try:
        digest = hashlib.sha256()
        for split in SPLITS:
            np.save(os.path.join(staging, "x_%s.npy" % split), x[split], allow_pickle=False)
            np.save(os.path.join(staging, "y_%s.npy" % split), y[split], allow_pickle=False)
            digest.update(x[split].tobytes())
            digest.update(y[split].astype("<i8").tobytes())
        meta = {"format": CACHE_FORMAT, "classes": list(classes), "content_sha256": digest.hexdigest(),
                "shapes": {s: list(x[s].shape) for s in SPLITS}}
        with open(os.path.join(staging, "meta.json"), "w") as handle:
            json.dump(meta, handle, indent=2, sort_keys=True)
        if os.path.isdir(folder):  # an incomplete leftover from a killed job
            shutil.rmtree(folder, ignore_errors=True)
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _read_cache(folder, key):
    try:
        with open(os.path.join(folder, "meta.json")) as handle:
            meta = json.load(handle)
        if meta.get("format") != CACHE_FORMAT:
            raise DataError("data cache %s has format %r, expected %d; delete that folder and run again"
                            % (folder, meta.get("format"), CACHE_FORMAT))
        # memory-mapped: jobs on one machine share the page cache instead of each
        # holding a copy, and a job reads only the images its profile uses
        x = {s: np.load(os.path.join(folder, "x_%s.npy" % s), mmap_mode="r") for s in SPLITS}
        y = {s: np.load(os.path.join(folder, "y_%s.npy" % s)) for s in SPLITS}
    except (OSError, ValueError) as err:
        raise DataError("data cache %s is unreadable (%s); delete that folder and run again" % (folder, err))
    return Arrays(x, y, meta["classes"], key, meta["content_sha256"])


# -- decoding --------------------------------------------------------------------
def _decode(kind, path):
    if kind == "keras":
        return _decode_keras()
    if os.path.isdir(path):
        return _decode_images(_folder_entries(path), path)
    if tarfile.is_tarfile(path):
        return _decode_tar(path)
    raise DataError("data set %s is neither a folder nor a tar archive; give a folder or .tar.gz laid "
                    "out train/<class>/*.jpg and test/<class>/*.jpg" % path)


def _decode_keras():
    from keras.datasets import cifar10

    try:
        (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    except Exception as err:  # a download failure surfaces as many types
        raise DataError("could not download CIFAR-10 through keras.datasets (%s: %s); offline, pass "
                        "--dataset with an image-folder copy such as cifar10-jpeg.tar.gz"
                        % (type(err).__name__, err))
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    x = {"train": np.ascontiguousarray(x_train, dtype=np.uint8), "test": np.ascontiguousarray(x_test, dtype=np.uint8)}
    y = {"train": y_train.reshape(-1).astype(np.int64), "test": y_test.reshape(-1).astype(np.int64)}
    return x, y, classes


def _split_member(name):
    """('train', 'cat', 'file.jpg') for an archive path ending in <split>/<class>/<file>, else None.

    '/' separates first: a class named with a backslash (``$\\frac{a}{b}$``) stays one class; only a
    path that is no member that way is read with '\\' as a separator too (an archive made on Windows).
    """
    for text in (name, name.replace("\\", "/")):
        parts = [p for p in text.split("/") if p and p != "."]
        if len(parts) >= 3 and parts[-3] in SPLITS:
            return _image_member(*parts[-3:])
    return None


def _image_member(split, cls, fname):
    """(split, class, file) when ``fname`` is an image file (not hidden), else None."""
    if fname.startswith(".") or not fname.lower().endswith(IMAGE_EXTENSIONS):
        return None
    return split, cls, fname


def _folder_entries(root):
    entries = []
    for split in SPLITS:
        split_dir = os.path.join(root, split)
        if not os.path.isdir(split_dir):
            continue
        for cls in sorted(os.listdir(split_dir)):
            cls_dir = os.path.join(split_dir, cls)
            if not os.path.isdir(cls_dir):
                continue
            for name in sorted(os.listdir(cls_dir)):
                full = os.path.join(cls_dir, name)
                found = _image_member(split, cls, name)
                if found and os.path.isfile(full):
                    entries.append((found, full, None))
    return entries


def _decode_tar(path):
    entries = []
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                found = _split_member(member.name) if member.isfile() else None
                if found:
                    entries.append((found, member.name, archive.extractfile(member).read()))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError("data set archive %s is corrupt (%s); download it again" % (path, err))
    return _decode_images(entries, path)


def _decode_images(entries, where):
    from PIL import Image

    classes = {s: sorted({e[0][1] for e in entries if e[0][0] == s}) for s in SPLITS}
    if not classes["train"]:
        raise DataError("no images found under %s/train/<class>/; an image-folder data set needs "
                        "train/<class>/*.jpg and test/<class>/*.jpg" % where)
    if not classes["test"]:
        raise DataError("no images found under %s/test/<class>/; add a test split laid out like train/"
                        % where)
    if classes["train"] != classes["test"]:
        missing = sorted(set(classes["train"]) ^ set(classes["test"]))
        raise DataError("train and test of %s have different classes (%s appear in only one); every class "
                        "needs a folder in both splits" % (where, ", ".join(missing)))
    names = classes["train"]
    _check_class_names(names, where)
    index = {c: i for i, c in enumerate(names)}
    entries = sorted(entries, key=lambda e: e[0])
    shape = None
    x = {s: [] for s in SPLITS}
    y = {s: [] for s in SPLITS}
    for (split, cls, fname), name, payload in entries:
        try:
            image = Image.open(io.BytesIO(payload) if payload is not None else name)
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except Exception as err:  # Pillow raises many types for a bad file
            raise DataError("cannot decode image %s in %s (%s); remove or replace that file"
                            % (name, where, err))
        if shape is None:
            shape = pixels.shape
        elif pixels.shape != shape:
            raise DataError("image %s in %s is %dx%d but the data set's images are %dx%d; resize it or "
                            "remove it" % (name, where, pixels.shape[1], pixels.shape[0], shape[1], shape[0]))
        x[split].append(pixels)
        y[split].append(index[cls])
    xs = {s: np.stack(x[s]) for s in SPLITS}
    ys = {s: np.asarray(y[s], dtype=np.int64) for s in SPLITS}
    return xs, ys, names


def _check_class_names(names, where):
    """Refuse class folder names a reader cannot tell apart: blank, or equal once Unicode-normalised."""
    blank = [n for n in names if not n.strip()]
    if blank:
        raise DataError("data set %s has a class folder named %r, which is blank; rename it to say what its "
                        "images show" % (where, blank[0]))
    seen = {}
    for name in names:
        key = unicodedata.normalize("NFKC", name)
        if key in seen:
            raise DataError("data set %s has class folders %r and %r, which read the same (equal once Unicode "
                            "is normalised); merge or rename one of them" % (where, seen[key], name))
        seen[key] = name


# -- the subsets every backend shares --------------------------------------------
def stratified_pick(labels, count, rng, exclude=None):
    """Indices of ``count`` items spread evenly over classes, in a seeded order.

    ``count`` None means all (less ``exclude``). Uses ``RandomState`` because its
    streams are identical on every numpy version the workload runs on.
    """
    labels = np.asarray(labels)
    pool = np.arange(len(labels))
    if exclude is not None and len(exclude):
        pool = np.setdiff1d(pool, exclude)
    if count is None or count >= len(pool):
        return pool[rng.permutation(len(pool))]
    if count <= 0:
        return np.zeros(0, dtype=np.int64)
    classes = np.unique(labels[pool])
    per_class = {c: pool[labels[pool] == c] for c in classes}
    base, extra = divmod(count, len(classes))
    chosen = []
    for i, c in enumerate(classes):
        members = per_class[c][rng.permutation(len(per_class[c]))]
        want = base + (1 if i < extra else 0)
        chosen.append(members[:want])
    picked = np.concatenate(chosen)
    return picked[rng.permutation(len(picked))]


def subset_indices(y, n_train, n_val, n_test, seed):
    """{split: indices} for train, val (held out of the training set) and test."""
    available_train, available_test = len(y["train"]), len(y["test"])
    if (n_train or 0) + (n_val or 0) > available_train or (n_train is None and n_val >= available_train):
        raise DataError("the profile asks for %s training and %d validation images but the data set has %d "
                        "training images; use a larger data set or a smaller profile"
                        % ("all" if n_train is None else n_train, n_val or 0, available_train))
    if n_test is not None and n_test > available_test:
        raise DataError("the profile asks for %d test images but the data set has %d; use a larger data set "
                        "or a smaller profile" % (n_test, available_test))
    rng = np.random.RandomState(seed)
    val = stratified_pick(y["train"], n_val, rng) if n_val else np.zeros(0, dtype=np.int64)
    train = stratified_pick(y["train"], n_train, rng, exclude=val)
    test = stratified_pick(y["test"], n_test, np.random.RandomState(seed + 1))
    return {"train": train.astype(np.int64), "val": val.astype(np.int64), "test": test.astype(np.int64)}


class Prepared(object):
    """The run's splits: uint8 pixels and integer labels, floats made when asked.

    Loading stays cheap: nothing is copied until a split is used. The float32
    images a model needs are made per use, for training in the epoch's
    shuffled order, where a copy was needed anyway.
    """

    def __init__(self, sources, y, classes, fingerprint, key, indices, channels_first=False):
        self.sources = sources
        """{split: (the whole decoded array it is cut from, indices into it)}"""
        self.y = y
        self.classes = classes
        self.fingerprint = fingerprint
        self.key = key
        self.indices = indices
        self.channels_first = channels_first
        self._floats = {}

    def input_shape(self):
        height, width, channels = next(iter(self.sources.values()))[0].shape[1:]
        return (channels, height, width) if self.channels_first else (height, width, channels)

    def pixels(self, split, order=None):
        """uint8 NHWC images of a split, in ``order`` (positions within the split) if given."""
        whole, idx = self.sources[split]
        return whole[idx if order is None else idx[np.asarray(order)]]

    def floats(self, split, order=None):
        """float32 images in [0, 1] in the model's layout, in ``order`` if given."""
        if order is None and split in self._floats:
            return self._floats[split]
        out = np.multiply(self.pixels(split, order), np.float32(1.0 / 255.0), dtype=np.float32)
        if self.channels_first:
            out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
        if order is None:
            self._floats[split] = out
        return out


SOURCE_SPLIT = {"train": "train", "val": "train", "test": "test"}


def prepare(arrays, profile, splits=("train", "val", "test"), channels_first=False):
    """Cut the profile's subsets; the fingerprint names the exact images and order.

    ``channels_first``: ``floats`` gives NCHW images (same pixels, same order).
    """
    indices = subset_indices(arrays.y, profile["n_train"], profile["n_val"], profile["n_test"], profile["seed"])
    sources, y = {}, {}
    for split in splits:
        source = SOURCE_SPLIT[split]
        sources[split] = (arrays.x[source], indices[split])
        y[split] = arrays.y[source][indices[split]]
    return Prepared(sources, y, arrays.classes, fingerprint(arrays.content_hash, indices), arrays.key, indices,
                    channels_first)


def fingerprint(content_hash, indices):
    """The data fingerprint: the source's content hash and the exact rows of each split, in order.

    Every result file records it; the harness recomputes it (the report's
    thumbnails) to trust a cache, so it is written once, here.
    """
    digest = hashlib.sha256(content_hash.encode("ascii"))
    for split in ("train", "val", "test"):
        digest.update(split.encode("ascii"))
        digest.update(np.asarray(indices[split]).astype("<i8").tobytes())
    return digest.hexdigest()
