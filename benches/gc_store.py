#!/usr/bin/env python3
"""Writes a big registry store for the garbage-collection benchmark (benches/gc_compare.sh).

The store is laid out exactly as distribution 2.8 keeps it (ROOT/docker/registry/v2, the paths
of src/storage/paths.rs, link files holding the digest with no newline), written directly, so
100,000 blobs take a minute or two instead of hours of pushes:

- REPOS repositories (default MANIFESTS / 50), each with at least one tag;
- MANIFESTS manifests in all: schema2 Docker images and OCI images (about half each), about 3%
  indexes (OCI indexes and Docker manifest lists, 2-3 platform children each, the children
  pushed untagged as distribution's clients push them);
- tags: most top-level manifests get a tag of their own, some re-use a tag (the tag moves on,
  its history keeps the old target: an untagged revision), some are pushed by digest only;
- deleted manifests (about 10%, as the DELETE API leaves them): the revision link is gone, and
  a tag whose current target it was is gone with its history; a manifest deleted after its tag
  moved on stays in that tag's history;
- blobs: each image has its own config and 1-4 KiB layers of random bytes, shares 1-3 base
  layers from a pool used by every repository, and its repository has a layer link for each;
  orphan blobs (half with a layer link, as an abandoned push leaves them, half with none) fill
  the rest, so that BLOBS blobs are written and about GARBAGE of them are garbage.

Every file's modification time is set AGE seconds in the past, so no grace window hides
anything. What each collector should delete is computed here too, by the rules each one
follows (layerstore: docs/gc.md; distribution 2.8: registry/storage/garbagecollect.go, which
with --delete-untagged deletes the untagged children of a tagged index and everything only
they reference, and keeps the children's manifest bytes because the index marks them), and
written to ROOT/gc_store.json for gc_compare.sh to check both collectors against.

Usage: benches/gc_store.py ROOT [--blobs 100000] [--manifests 10000] [--repos N]
       [--garbage 0.2] [--age 86400] [--seed 16]
"""

import argparse
import hashlib
import json
import os
import random
import sys
import time

V2 = ("docker", "registry", "v2")

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

PLATFORMS = [("amd64", None), ("arm64", "v8"), ("arm", "v7"), ("ppc64le", None), ("s390x", None)]


class Writer:
    """Writes blobs and links under ROOT/docker/registry/v2 with old modification times."""

    def __init__(self, root, mtime):
        self.base = os.path.join(root, *V2)
        self.mtime = mtime
        self.files = 0
        self.orphans = 0
        self.sizes = {}

    def _write(self, path, content):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        os.utime(path, (self.mtime, self.mtime))
        self.files += 1

    def blob(self, content):
        """Stores `content` in the blob store; returns its digest."""
        hex_ = hashlib.sha256(content).hexdigest()
        digest = "sha256:" + hex_
        if digest not in self.sizes:
            self._write(os.path.join(self.base, "blobs", "sha256", hex_[:2], hex_, "data"), content)
            self.sizes[digest] = len(content)
        return digest

    def link(self, repo, rel_dir, digest):
        """A link file `repositories/<repo>/<rel_dir>/link` holding `digest` (no newline)."""
        path = os.path.join(self.base, "repositories", repo, rel_dir, "link")
        self._write(path, digest.encode())


def digest_dir(digest):
    alg, hex_ = digest.split(":", 1)
    return os.path.join(alg, hex_)


class Image:
    """A manifest: an image (config + layers) or an index (children)."""

    def __init__(self, repo, kind, docker):
        self.repo = repo
        self.kind = kind  # "image" or "index"
        self.docker = docker  # Docker media types, else OCI
        self.top = True  # False for an index's child
        self.children = []
        self.config = None
        self.layers = []
        self.digest = None
        self.deleted = False

    def refs(self):
        """What distribution's References() returns: config + layers, or the children."""
        if self.kind == "index":
            return [c.digest for c in self.children]
        return [self.config] + self.layers


def plan(args, rng):
    """The manifests, per repository, before any byte is written."""
    repos = ["bench/r%03d/app%d" % (i, i % 7) for i in range(args.repos)]
    n_index = round(args.manifests * 0.03)
    children = [rng.choice((2, 2, 3)) for _ in range(n_index)]
    while n_index and n_index + sum(children) > args.manifests // 2:
        n_index -= 1
        children.pop()
    n_standalone = args.manifests - n_index - sum(children)
    tops = []
    for i in range(n_standalone + n_index):
        repo = repos[i % len(repos)]
        if i < n_index:
            index = Image(repo, "index", docker=(i % 2 == 0))
            for _ in range(children[i]):
                child = Image(repo, "image", index.docker)
                child.top = False
                index.children.append(child)
            tops.append(index)
        else:
            tops.append(Image(repo, "image", docker=rng.random() < 0.5))
    rng.shuffle(tops)
    by_repo = {r: [] for r in repos}
    for image in tops:
        by_repo[image.repo].append(image)
    return by_repo


def tag_and_delete(by_repo, rng):
    """Tags each repository's manifests in push order, then deletes some.

    Returns {repo: {tag: [history in push order]}} (the last entry is the current target)."""
    tags = {}
    for repo, images in by_repo.items():
        repo_tags = {}
        for n, image in enumerate(images):
            roll = rng.random()
            if n > 0 and roll < 0.04:
                continue  # pushed by digest only
            if repo_tags and roll < 0.18:
                repo_tags[rng.choice(sorted(repo_tags))].append(image)  # the tag moves on
            else:
                repo_tags["v%d.%d" % (n // 10, n % 10)] = [image]
        tags[repo] = repo_tags
        # Deletions through the API: the revision link goes; a tag pointing at it goes too.
        for image in images:
            if image.kind != "image" or rng.random() >= 0.10:
                continue
            current_of = [t for t, h in repo_tags.items() if h[-1] is image]
            if current_of and len(repo_tags) == 1:
                continue  # keep a tag in every repository (distribution 2.8 needs one)
            image.deleted = True
            for tag in current_of:
                del repo_tags[tag]
    return tags


def layer_budget(args, by_repo):
    """Mean unique layers per image so that BLOBS blobs hold about GARBAGE garbage."""
    images = [i for imgs in by_repo.values() for t in imgs for i in ([t] + t.children)]
    images = [i for i in images if i.kind == "image"]
    deleted = sum(1 for i in images if i.deleted)
    pool = max(4, args.blobs // 500)
    live = len(images) - deleted
    spare = args.blobs - args.manifests - len(images) - pool - args.garbage * args.blobs + 2 * deleted
    mean = max(1.0, spare / max(1, live))
    return images, pool, mean


def content_config(rng):
    arch = rng.choice(PLATFORMS)[0]
    return json.dumps({
        "architecture": arch, "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin", "BUILD=%016x" % rng.getrandbits(64)]},
        "rootfs": {"type": "layers", "diff_ids": []},
    }, separators=(",", ":")).encode()


def descriptor(w, media_type, digest, extra=None):
    d = {"mediaType": media_type, "size": w.sizes[digest], "digest": digest}
    if extra:
        d.update(extra)
    return d


def write_image(w, image, base_pool, n_layers, rng):
    """Config, layers and manifest of one image; returns nothing (fills `image`)."""
    image.config = w.blob(content_config(rng))
    bases = rng.sample(base_pool, min(len(base_pool), rng.randint(1, 3)))
    image.layers = bases + [w.blob(os.urandom(rng.randint(1024, 4096))) for _ in range(n_layers)]
    layer_type = DOCKER_LAYER if image.docker else OCI_LAYER
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if image.docker else OCI_MANIFEST,
        "config": descriptor(w, DOCKER_CONFIG if image.docker else OCI_CONFIG, image.config),
        "layers": [descriptor(w, layer_type, d) for d in image.layers],
    }
    if not image.docker and rng.random() < 0.3:
        manifest["annotations"] = {"org.opencontainers.image.revision": "%08x" % rng.getrandbits(32)}
    image.digest = w.blob(json.dumps(manifest, indent=3).encode())


def write_index(w, index, rng):
    child_type = DOCKER_MANIFEST if index.docker else OCI_MANIFEST
    entries = []
    for child, (arch, variant) in zip(index.children, rng.sample(PLATFORMS, len(index.children))):
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        entries.append(descriptor(w, child_type, child.digest, {"platform": platform}))
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST if index.docker else OCI_INDEX,
        "manifests": entries,
    }
    index.digest = w.blob(json.dumps(manifest, indent=3).encode())


def write_store(args, rng):
    by_repo = plan(args, rng)
    tags = tag_and_delete(by_repo, rng)
    images, pool_size, mean = layer_budget(args, by_repo)
    w = Writer(args.root, time.time() - args.age)
    base_pool = [w.blob(os.urandom(rng.randint(1024, 4096))) for _ in range(pool_size)]
    # int(mean) or one more (as mean's fraction says), spread by up to 3 either way.
    whole, spread = int(mean), min(3, int(mean) - 1)
    layers_of = {
        id(i): whole + (rng.random() < mean - whole) + rng.randint(-spread, spread) for i in images
    }
    # Orphans: what is left of the budget once the manifests' blobs are counted.
    planned = args.manifests + len(images) + pool_size + sum(layers_of.values())
    orphans = max(0, args.blobs - planned)
    w.orphans = orphans
    links = {repo: set() for repo in by_repo}
    for repo, tops in by_repo.items():
        for top in tops:
            for child in top.children:
                write_image(w, child, base_pool, layers_of[id(child)], rng)
                links[repo].update(child.refs())
            if top.kind == "index":
                write_index(w, top, rng)
            else:
                write_image(w, top, base_pool, layers_of[id(top)], rng)
                links[repo].update(top.refs())
    repos = sorted(by_repo)
    orphan_digests = []
    for n in range(orphans):
        digest = w.blob(os.urandom(rng.randint(1024, 4096)))
        orphan_digests.append(digest)
        if n % 2 == 0:
            links[rng.choice(repos)].add(digest)
    for repo, digests in links.items():
        for digest in digests:
            w.link(repo, os.path.join("_layers", digest_dir(digest)), digest)
    for repo, tops in by_repo.items():
        for top in tops:
            for m in [top] + top.children:
                if not m.deleted:
                    w.link(repo, os.path.join("_manifests", "revisions", digest_dir(m.digest)), m.digest)
        for tag, history in tags[repo].items():
            tag_dir = os.path.join("_manifests", "tags", tag)
            w.link(repo, os.path.join(tag_dir, "current"), history[-1].digest)
            for m in history:
                w.link(repo, os.path.join(tag_dir, "index", digest_dir(m.digest)), m.digest)
    return w, by_repo, tags


def manifests_of(by_repo):
    return [m for tops in by_repo.values() for t in tops for m in [t] + t.children]


def expected(w, by_repo, tags):
    """What each collector deletes, by its own rules (see the module doc)."""
    revisions = [m for m in manifests_of(by_repo) if not m.deleted]
    current = {(repo, h[-1].digest) for repo, t in tags.items() for h in t.values()}
    tagged = [m for m in revisions if (m.repo, m.digest) in current]

    def marks_of(live):
        marks = set()
        for m in live:
            marks.add(m.digest)
            marks.update(m.refs())
        return marks

    def reach(roots):
        live, queue = set(), list(roots)
        while queue:
            m = queue.pop()
            if id(m) not in live:
                live.add(id(m))
                queue.extend(c for c in m.children if not c.deleted)
        return [m for m in revisions if id(m) in live]

    everything = set(w.sizes)
    layerstore_untagged = reach(tagged)
    result = {
        "blobs": len(everything),
        "manifests": len(manifests_of(by_repo)),
        "revisions": len(revisions),
        "deleted_manifests": sum(1 for m in manifests_of(by_repo) if m.deleted),
        "repositories": len(by_repo),
        "tags": sum(len(t) for t in tags.values()),
        "default": {
            "blobs_deleted": len(everything - marks_of(revisions)),
            "manifests_deleted": 0,
        },
        "untagged": {
            "layerstore": {
                "blobs_deleted": len(everything - marks_of(layerstore_untagged)),
                "manifests_deleted": len(revisions) - len(layerstore_untagged),
            },
            "distribution": {
                "blobs_deleted": len(everything - marks_of(tagged)),
                "manifests_deleted": len(revisions) - len(tagged),
            },
        },
    }
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root")
    parser.add_argument("--blobs", type=int, default=100_000)
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--repos", type=int, default=0, help="default: manifests / 50")
    parser.add_argument("--garbage", type=float, default=0.2)
    parser.add_argument("--age", type=int, default=86_400, help="seconds in the past")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    if args.manifests < 1 or args.blobs < 3 * args.manifests:
        sys.exit("gc_store.py: need at least 1 manifest and 3 blobs per manifest")
    args.repos = args.repos or max(1, args.manifests // 50)
    if os.path.exists(os.path.join(args.root, "docker")):
        sys.exit("gc_store.py: %s already holds a store" % args.root)
    started = time.time()
    w, by_repo, tags = write_store(args, random.Random(args.seed))
    result = expected(w, by_repo, tags)
    result["files"] = w.files
    result["orphans"] = w.orphans
    result["seconds"] = round(time.time() - started, 1)
    with open(os.path.join(args.root, "gc_store.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
