"""Build the operator image from the repository's Dockerfile without a Docker engine.

The Dockerfile's base images are build arguments (``PYTHON_IMAGE``, ``GCC_IMAGE``); upstream, CI
uses the defaults. Here no public registry is reachable, so this module makes the two Debian bases
from Debian packages with mmdebstrap, imports them into podman, and builds the project's own
Dockerfile against them with podman:

* ``python`` base: Debian's Python 3.11 (``python3``, ``python3-venv``) and ``ca-certificates`` —
  the same Python minor as the upstream default ``python:3.11-slim-bookworm``;
* ``gcc`` base: ``gcc`` and ``libc6-dev`` (static glibc for drop-noop).

Base tarballs are cached in ``~/.cache/drop-operator/images`` (``$DROP_IMAGE_CACHE``), keyed by
suite, architecture and package list, so a machine makes them once (about 2.5 min) and then only
imports them; delete the cache to pick up Debian security updates.

The test suites build with ``reuse=True``: the image is also tagged with :func:`source_key`, a hash
of everything the build reads (the Dockerfile, the files ``.dockerignore`` lets into the context,
the bases' keys, the version and architecture), and a build whose key is in podman's store
already is not run again (its revision label then names the commit it was first built at).

    python -m devtools.image build [--tag localhost/drop-operator:dev] [--push 127.0.0.1:5000/drop-operator:0.1.0]

Traps on this kind of machine (see docs/e2e.md): containers may not raise RLIMIT_NOFILE/NPROC, so
builds pass ``--ulimit nofile=1024:1024`` and runs lower both (:func:`podman_run_args`); pip inside the build
trusts the host's CA bundle, mounted read-only over the base's for the build steps only (it is not
part of any layer).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devtools.release import package_version
from devtools.tools import REPO_ROOT, system_tool

__all__ = [
    "BASES",
    "DEFAULT_TAG",
    "BaseImage",
    "BuiltImage",
    "base_image",
    "build",
    "build_inputs",
    "cache_dir",
    "podman",
    "podman_run_args",
    "push",
    "source_key",
]

SUITE = "bookworm"
DEFAULT_TAG = "localhost/drop-operator:dev"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Like the upstream slim images: no documentation, manual pages or translations (licences stay).
_SLIM = (
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
)


@dataclass(frozen=True)
class BaseImage:
    """A Debian base made from packages: the Dockerfile build argument it fills and what it holds."""

    build_arg: str
    variant: str
    packages: tuple[str, ...]

    def key(self, arch: str) -> str:
        """Cache key: changes whenever what mmdebstrap would produce changes (but not its date)."""
        spec = json.dumps([SUITE, arch, self.variant, self.packages, _SLIM])
        return hashlib.sha256(spec.encode()).hexdigest()[:12]


BASES = {
    # "essential" (no apt): the final image is this base plus the venv; nothing installs into it.
    "python": BaseImage("PYTHON_IMAGE", "essential", ("python3", "python3-venv", "ca-certificates")),
    "gcc": BaseImage("GCC_IMAGE", "apt", ("gcc", "libc6-dev")),
}


@dataclass(frozen=True)
class BuiltImage:
    """An image in podman's store: its ID, the tag it was built as and its size in bytes."""

    id: str
    tag: str
    size: int
    arch: str


def cache_dir() -> Path:
    return Path(os.environ.get("DROP_IMAGE_CACHE", Path.home() / ".cache" / "drop-operator" / "images"))


def podman() -> Path:
    """podman, or ToolMissingError naming the Debian package (``hack/apt-packages.sh`` installs it)."""
    return system_tool("podman", "podman")


def _run(args: Sequence[str | Path], *, timeout: float, what: str) -> str:
    """Run a command; a failure raises with its output (stdout is returned)."""
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}):\n{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    return result.stdout


def _image_exists(ref: str) -> bool:
    return subprocess.run([str(podman()), "image", "exists", ref], check=False, timeout=60).returncode == 0


def base_image(name: str, arch: str = "amd64") -> str:
    """The podman reference of Debian base ``name`` for ``arch``: reused from podman's store, else
    imported from the cached tarball, else made with mmdebstrap first.

    Raises ToolMissingError when mmdebstrap or podman is missing, RuntimeError when a step fails.
    """
    base = BASES[name]
    key = base.key(arch)
    ref = f"localhost/drop-base-{name}:{SUITE}-{arch}-{key}"
    if _image_exists(ref):
        return ref
    tarball = cache_dir() / f"{name}-{SUITE}-{arch}-{key}.tar"
    if not tarball.exists():
        mmdebstrap = system_tool("mmdebstrap", "mmdebstrap")
        tarball.parent.mkdir(parents=True, exist_ok=True)
        # Written next to the cache entry and renamed, so an interrupted run leaves no bad tarball.
        with tempfile.TemporaryDirectory(dir=tarball.parent) as tmp:
            partial = Path(tmp) / tarball.name
            _run(
                [
                    mmdebstrap, "--quiet", f"--variant={base.variant}", f"--architectures={arch}",
                    f"--include={','.join(base.packages)}", *_SLIM, SUITE, partial,
                ],
                timeout=900,
                what=f"mmdebstrap of the {name} base",
            )  # fmt: skip
            partial.rename(tarball)
    _run(
        [podman(), "import", "--quiet", f"--arch={arch}", '--change=CMD ["/bin/sh"]', tarball, ref],
        timeout=300,
        what=f"podman import of {tarball}",
    )
    return ref


#: What ``.dockerignore`` keeps out of the directories it lets in (checked by a unit test).
_IGNORED_DIRS = ("__pycache__",)
_IGNORED_SUFFIXES = (".pyc",)


def build_inputs(root: Path = REPO_ROOT) -> list[Path]:
    """Every file the image build reads: the Dockerfile and what ``.dockerignore`` (an allowlist:
    ``*`` then ``!path`` lines) lets into the build context, sorted."""
    files = {root / "Dockerfile"}
    for line in (root / ".dockerignore").read_text().splitlines():
        if not line.startswith("!"):
            continue
        path = root / line[1:].strip().rstrip("/")
        candidates = path.rglob("*") if path.is_dir() else [path]
        files.update(
            f
            for f in candidates
            if f.is_file()
            and not set(f.relative_to(root).parts) & set(_IGNORED_DIRS)
            and f.suffix not in _IGNORED_SUFFIXES
        )
    return sorted(files)


def source_key(arch: str = "amd64", version: str | None = None, root: Path = REPO_ROOT) -> str:
    """A hash of what the build reads (:func:`build_inputs`, the bases, version and ``arch``)."""
    digest = hashlib.sha256()
    bases = {name: base.key(arch) for name, base in BASES.items()}
    digest.update(json.dumps([arch, version or package_version(), bases]).encode())
    for path in build_inputs(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _inspect(ref: str) -> dict[str, object]:
    data = json.loads(_run([podman(), "image", "inspect", ref], timeout=60, what=f"inspect {ref}"))
    info: dict[str, object] = data[0]
    return info


def build(
    tag: str = DEFAULT_TAG,
    *,
    arch: str = "amd64",
    version: str | None = None,
    revision: str | None = None,
    timeout: float = 1800,
    reuse: bool = False,
) -> BuiltImage:
    """Build the repository's Dockerfile with podman against the Debian bases; return the image.

    ``version``/``revision`` fill the OCI labels (default: the package version, ``git rev-parse``).
    The previous image of the same tag is removed once replaced, so rebuilds do not pile up.
    With ``reuse``, an image built before from the same :func:`source_key` is returned (and
    tagged ``tag``) without building; a new build also gets that key as a tag, and only the
    newest such tag is kept.
    """
    version = version or package_version()
    if reuse:
        keyed = f"{tag.rpartition(':')[0]}:src-{source_key(arch, version)}"
        if not _image_exists(keyed):
            _untag_keyed(keyed)
            built = build(tag, arch=arch, version=version, revision=revision, timeout=timeout)
            _run([podman(), "tag", built.id, keyed], timeout=60, what=f"podman tag {keyed}")
        _run([podman(), "tag", keyed, tag], timeout=60, what=f"podman tag {tag}")
        return _built(keyed, tag)
    bases = {BASES[name].build_arg: base_image(name, arch) for name in BASES}
    if revision is None:
        git = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
        )
        revision = git.stdout.strip() or "unknown"
    previous = str(_inspect(tag)["Id"]) if _image_exists(tag) else None
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        iidfile = Path(tmp) / "iid"
        command: list[str | Path] = [
            podman(), "build", f"--arch={arch}", "--ulimit=nofile=1024:1024", f"--iidfile={iidfile}",
            f"--tag={tag}", f"--build-arg=VERSION={version}", f"--build-arg=REVISION={revision}",
        ]  # fmt: skip
        command += [f"--build-arg={arg}={ref}" for arg, ref in bases.items()]
        if HOST_CA_BUNDLE.exists():
            command.append(f"--volume={HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro")
        command.append(REPO_ROOT)
        output = _run(command, timeout=timeout, what="podman build")
        image_id = iidfile.read_text().strip().removeprefix("sha256:")
    if previous and previous != image_id:
        # Also drops the old build's untagged intermediate images; fails harmlessly if still in use.
        subprocess.run([str(podman()), "rmi", previous], capture_output=True, check=False, timeout=120)
    # Every image this build made or took from the cache is named in its output as "--> <id>".
    used = set(re.findall(r"^--> (?:Using cache )?([0-9a-f]{12,64})", output, re.M))
    _remove_stale_stages({str(_inspect(ref)["Id"]) for ref in bases.values()}, used, before=started)
    return _built(image_id, tag)


def _built(ref: str, tag: str) -> BuiltImage:
    info = _inspect(ref)
    size, arch = int(str(info["Size"])), str(info["Architecture"])
    return BuiltImage(id=str(info["Id"]), tag=tag, size=size, arch=arch)


def _untag_keyed(keyed: str) -> None:
    """Remove the names of earlier keyed builds of ``keyed``'s repository (the images go when
    their last name does, or with the next build of their other tag)."""
    repository = keyed.rpartition(":")[0]
    listing = _run([podman(), "images", "--format=json", repository], timeout=60, what="podman images")
    for info in json.loads(listing):
        for name in info.get("Names") or []:
            if name.startswith(f"{repository}:src-"):
                # With an explicit name: `podman untag IMAGE` alone removes every name.
                subprocess.run([str(podman()), "untag", info["Id"], name], capture_output=True, check=False)


def _remove_stale_stages(bases: set[str], used: set[str], *, before: float) -> None:
    """Remove the last stage of earlier builds (``build``, ``noop``): untagged leaves that descend
    from our ``bases``, were created before ``before`` (epoch seconds) and are not among the
    ``used`` IDs (or ID prefixes) of the current build, whose stages stay as the next build's cache."""
    listing = _run([podman(), "images", "--all", "--format=json"], timeout=60, what="podman images")
    images = {i["Id"]: i for i in json.loads(listing)}
    stale = []
    for image_id, info in images.items():
        if not info.get("Dangling") or int(info.get("Created", before)) >= before:
            continue
        if any(image_id.startswith(prefix) for prefix in used):
            continue
        parent = info.get("ParentId") or ""
        while parent and parent not in bases:
            parent = images.get(parent, {}).get("ParentId") or ""
        if parent:
            stale.append(image_id)
    if stale:
        subprocess.run([str(podman()), "rmi", *stale], capture_output=True, check=False, timeout=300)


def push(image: str, destination: str, *, tls_verify: bool = False) -> str:
    """``podman push`` ``image`` (ID or tag) to ``destination`` (``host:port/repo:tag``); its digest."""
    with tempfile.TemporaryDirectory() as tmp:
        digestfile = Path(tmp) / "digest"
        _run(
            [
                podman(), "push", "--quiet", f"--tls-verify={str(tls_verify).lower()}",
                f"--digestfile={digestfile}", image, destination,
            ],
            timeout=600,
            what=f"podman push to {destination}",
        )  # fmt: skip
        return digestfile.read_text().strip()


def podman_run_args() -> list[str]:
    """``podman run`` options that work here. This kind of VM refuses to let the OCI runtime set
    RLIMIT_NOFILE or RLIMIT_NPROC to anything but a lower value than it starts with (podman's
    defaults and even the caller's own limits fail with "operation not permitted"), so both are
    lowered to values the operator and drop-noop are far from reaching."""
    return ["--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.image", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("build", help="build the operator image with podman against Debian bases")
    cmd.add_argument("--tag", default=DEFAULT_TAG)
    cmd.add_argument("--arch", default="amd64")
    cmd.add_argument("--push", metavar="HOST:PORT/REPO:TAG", help="then push it (plain HTTP, e.g. 127.0.0.1)")
    args = parser.parse_args(argv)
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        print("podman and mmdebstrap are needed: run `bash hack/apt-packages.sh`", file=sys.stderr)
        return 1
    started = time.monotonic()
    image = build(args.tag, arch=args.arch)
    print(
        f"built {image.tag} ({image.arch}) {image.id[:12]}: {image.size / 1e6:.0f} MB in {time.monotonic() - started:.0f}s"
    )
    if args.push:
        print(f"pushed {args.push}@{push(image.id, args.push)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
