"""Session images, built on this host with no image server, imported through the API.

Three variants:

``debian``
    debootstrap (minbase) of Debian 12 with tmux, bash, coreutils, git, python3,
    ca-certificates and a few network tools, a ``code`` user (uid 1000) and :data:`INIT`.
    The session image (alias ``coi/debian12``).
``build``
    ``debian`` plus gcc, libc6-dev and make (alias ``coi/debian12-build``): the incus tier
    builds C inside a session with it (a build is no fork bomb).
``<tool>`` (``claude``, ``codex``, ``opencode``, ``aider``) and ``agents`` (all of them)
    The debian image plus a profile's image recipe (:mod:`.recipes`): Debian's Node.js and the
    agent's npm package, or a venv with its pip package, at the versions of
    ``sessions/agents.lock`` (alias ``coi/<tool>``, ``coi/agents``). Everything is fetched on
    the host: npm installs into the rootfs with ``--prefix`` (downloads cached in
    :data:`NPM_CACHE`), pip wheels are downloaded into :data:`PIP_CACHE` and installed into
    ``/opt/venv`` by the rootfs' own pip; the packages' install scripts run in a chroot without
    network (``unshare --net``). The tool versions are recorded in the image properties
    (``coi.tools``) and shown by ``image list``.
``busybox``
    busybox-static plus the host's tmux (with its libraries, terminfo and the C.utf8 locale).
    About 3 MB and built in under a second: the incus test tier uses it where a process tree
    is enough (alias ``coi/busybox``).

Each build records a recipe hash (variant, package list, init, builder version) in the image
properties; ``image build`` does nothing when the alias already points at an image of the same
recipe, and ``image list`` marks the others stale. The tarball is kept in :data:`CACHE_DIR`, so
a new daemon re-imports in a fraction of a second instead of running debootstrap again.
``--from REMOTE:ALIAS`` copies a remote image instead (for hosts that have an image server).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageBuildError, IncusError, SessionError
from ..host.incus import api_call, raw_get
from .recipes import Packages

log = logging.getLogger(__name__)

BUILDER_VERSION = "1"
CACHE_DIR = Path(os.environ.get("COI_SENTINEL_IMAGE_CACHE", "/var/cache/coi-sentinel/images"))
DOWNLOAD_CACHE = Path(os.environ.get("COI_SENTINEL_DOWNLOAD_CACHE", "/var/cache/coi-sentinel"))
DEBOOTSTRAP_CACHE = DOWNLOAD_CACHE / "debootstrap"
NPM_CACHE = DOWNLOAD_CACHE / "npm"
PIP_CACHE = DOWNLOAD_CACHE / "pip"
VENV = "/opt/venv"
MIRROR = os.environ.get("COI_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SUITE = "bookworm"
DEBIAN_PACKAGES = ("tmux", "bash", "coreutils", "git", "python3", "ca-certificates", "iproute2",
                   "procps", "udhcpc", "netcat-openbsd", "less")
CODE_USER = "code"
CODE_UID = 1000
DESCRIPTION_PREFIX = "coi-sentinel"

#: PID 1 of both images: lo up, DHCP on eth0 when there is one (address only: the bridge hands
#: out no router), reap children, exit on SIGPWR (what `incus stop` sends), SIGTERM or SIGINT.
INIT = """#!/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
trap 'exit 0' PWR TERM INT
trap '' HUP
ip link set lo up 2>/dev/null
if [ -e /sys/class/net/eth0 ]; then
    ip link set eth0 up 2>/dev/null
    udhcpc -f -i eth0 -s /etc/coi/udhcpc.script -t 20 -T 1 -A 2 >/dev/null 2>&1 &
fi
while :; do sleep 3600 & wait $!; done
"""

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
    deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
    bound) ip -4 addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface"
           [ -n "$router" ] && set -- $router && ip route replace default via "$1" dev "$interface" ;;
    renew) ip addr replace "$ip/${mask:-24}" dev "$interface" ;;
esac
exit 0
"""


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    alias: str
    os: str
    release: str
    packages: tuple[str, ...] = ()
    agents: Packages | None = None       # the agent images: what goes on top of debian
    commands: tuple[str, ...] = ()       # pip tools: commands linked into /usr/local/bin

    def recipe(self) -> str:
        h = hashlib.sha256()
        parts = [BUILDER_VERSION, self.name, self.release, ",".join(self.packages), INIT,
                 UDHCPC_SCRIPT, str(CODE_UID)]
        if self.agents is not None:       # the base images keep the hash they always had
            parts += [self.agents.fingerprint(), ",".join(self.commands)]
        for part in parts:
            h.update(part.encode() + b"\0")
        return h.hexdigest()[:16]

    @property
    def debootstrap(self) -> bool:
        return self.os == "debian"


VARIANTS = {
    "debian": Variant("debian", "coi/debian12", "debian", SUITE, DEBIAN_PACKAGES),
    "build": Variant("build", "coi/debian12-build", "debian", SUITE,
                     DEBIAN_PACKAGES + ("gcc", "libc6-dev", "make")),
    "busybox": Variant("busybox", "coi/busybox", "busybox", "1.35"),
}


ALL_TOOLS = "all"


def tool_variant(tools: list[str] | str, *, user_dir: Path | None = None) -> Variant:
    """The agent image of one tool (``coi/claude``) or of every profile with an image recipe
    (``all``: ``coi/agents``), pinned by the lock."""
    from . import profiles as profiles_mod
    from .recipes import packages_for

    every = profiles_mod.load_all(user_dir)
    if tools == ALL_TOOLS or tools == [ALL_TOOLS]:
        chosen = [p for _n, p in sorted(every.items()) if p.image is not None]
        name = "agents"
    else:
        names = [tools] if isinstance(tools, str) else list(tools)
        chosen = [profiles_mod.get(n, user_dir) for n in names]
        name = names[0] if len(names) == 1 else "agents"
    packs = packages_for(chosen)
    commands = tuple(sorted(p.command[0] for p in chosen if p.image and p.image.pip))
    return Variant(name, f"coi/{name}", "debian", SUITE,
                   tuple(dict.fromkeys(DEBIAN_PACKAGES + packs.apt)), packs, commands)


def variant_named(name: str) -> Variant | None:
    """The current recipe of a variant recorded in an image's properties (None: unknown)."""
    if name in VARIANTS:
        return VARIANTS[name]
    try:
        return tool_variant(ALL_TOOLS if name == "agents" else name)
    except SessionError:
        return None


def _run(cmd: list[str], what: str, log_file: Path | None = None,
         env: dict[str, str] | None = None) -> None:
    try:
        if log_file is None:
            subprocess.run(cmd, check=True, capture_output=True, env=env)
        else:
            with open(log_file, "ab") as f:
                subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT, env=env)
    except FileNotFoundError as err:
        raise ImageBuildError(f"{what}: {cmd[0]} is not installed",
                              hint="run `bash scripts/setup-incus.sh packages`") from err
    except subprocess.CalledProcessError as err:
        detail = (err.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] \
            if log_file is None else [f"see {log_file}"]
        raise ImageBuildError(f"{what} failed (exit {err.returncode}): {' '.join(detail)}") from err


def _common_files(root: Path) -> None:
    (root / "etc/coi").mkdir(parents=True, exist_ok=True)
    (root / "sbin").mkdir(parents=True, exist_ok=True)
    init = root / "sbin/coi-init"
    init.write_text(INIT)
    init.chmod(0o755)
    script = root / "etc/coi/udhcpc.script"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    link = root / "sbin/init"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to("coi-init")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink():
        resolv.unlink()
    resolv.write_text("# coi-sentinel session image: DNS is set by the network policy\n")
    (root / "workspace").mkdir(exist_ok=True)


def _metadata(v: Variant, description: str, extra: dict[str, str] | None = None) -> str:
    lines = "".join(f"  {k}: \"{val}\"\n" for k, val in sorted((extra or {}).items()))
    return (f"architecture: x86_64\ncreation_date: {int(time.time())}\nproperties:\n"
            f"  architecture: x86_64\n  os: {v.os}\n  release: \"{v.release}\"\n"
            f"  description: \"{description}\"\n  coi.variant: {v.name}\n"
            f"  coi.recipe: \"{v.recipe()}\"\n{lines}templates: {{}}\n")


def _add_host_tmux(root: Path) -> None:
    """The host's tmux with its libraries, some terminfo entries and C.utf8 (tmux needs UTF-8)."""
    tmux = shutil.which("tmux")
    if tmux is None:
        raise ImageBuildError("the busybox image needs the host's tmux", hint="apt-get install tmux")
    out = subprocess.run(["ldd", tmux], capture_output=True, text=True, check=True).stdout
    libs = [line.split("=>")[1].split()[0] for line in out.splitlines()
            if "=>" in line and line.split("=>")[1].split()[:1] and line.split("=>")[1].split()[0].startswith("/")]
    libs += [line.split()[0] for line in out.splitlines() if line.strip().startswith("/")]
    for lib in [tmux] + libs:
        dest = root / lib.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(lib), dest)
    loc = Path("/usr/lib/locale/C.utf8")
    if loc.is_dir():
        shutil.copytree(loc, root / "usr/lib/locale/C.utf8", dirs_exist_ok=True)
    for entry in ("x/xterm", "x/xterm-256color", "s/screen", "s/screen-256color", "t/tmux",
                  "t/tmux-256color", "l/linux", "d/dumb", "v/vt100"):
        for base in ("/lib/terminfo", "/usr/share/terminfo"):
            src = Path(base) / entry
            if src.exists():
                dest = root / "usr/share/terminfo" / entry
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dest)
                break


def _build_busybox(v: Variant, work: Path) -> dict[str, str]:
    root = work / "rootfs"
    for d in ("bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "run", "root", "var/tmp",
              "usr/bin", "usr/sbin", f"home/{CODE_USER}"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "var/tmp").chmod(0o1777)
    busybox = Path("/bin/busybox")
    if not busybox.exists() or subprocess.run(["ldd", str(busybox)], capture_output=True).returncode == 0:
        raise ImageBuildError("/bin/busybox is missing or not static",
                              hint="apt-get install busybox-static")
    shutil.copy2(busybox, root / "bin/busybox")
    _run(["chroot", str(root), "/bin/busybox", "--install", "-s"], "busybox --install")
    (root / "etc/passwd").write_text(
        f"root:x:0:0:root:/root:/bin/sh\n{CODE_USER}:x:{CODE_UID}:{CODE_UID}::/home/{CODE_USER}:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc/group").write_text(f"root:x:0:\n{CODE_USER}:x:{CODE_UID}:\nnogroup:x:65534:\n")
    os.chown(root / f"home/{CODE_USER}", CODE_UID, CODE_UID)
    _common_files(root)
    _add_host_tmux(root)
    return {}


def _offline_chroot(root: Path, script: str, what: str, log_file: Path,
                    cwd: str = "/") -> None:
    """``sh -c script`` in the rootfs with no network at all (a new, empty net namespace) and
    its own /proc: the packages' install scripts run here, never on the host."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8", "PIP_CONFIG_FILE": "/dev/null", "PIP_NO_CACHE_DIR": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": ""}
    _run(["unshare", "--net", "--pid", "--fork", f"--mount-proc={root}/proc", "chroot", str(root),
          "sh", "-c", f"cd {shlex.quote(cwd)} && {script}"], what, log_file, env=env)


def _postinstall_scripts(modules: Path) -> list[tuple[str, str]]:
    """(package folder in the rootfs, its install script), for every package npm installed
    with ``--ignore-scripts`` that has a preinstall, install or postinstall script."""
    out = []
    for manifest in sorted(modules.glob("**/package.json")):
        pkg = manifest.parent
        top = pkg.parent.name == "node_modules" or \
            (pkg.parent.name.startswith("@") and pkg.parent.parent.name == "node_modules")
        if not top:
            continue
        try:
            data = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        scripts = data.get("scripts") or {} if isinstance(data, dict) else {}
        for hook in ("preinstall", "install", "postinstall"):
            if isinstance(scripts.get(hook), str):
                out.append((str(manifest.parent), scripts[hook]))
    return out


def _install_npm(root: Path, packs: Packages, log_file: Path) -> None:
    """npm (the host's) installs the pinned packages into the rootfs' /usr/local, downloads
    cached in NPM_CACHE, scripts off; then the scripts run in the rootfs, offline, with the
    image's own Node.js."""
    npm = shutil.which("npm")
    if npm is None:
        raise ImageBuildError("an agent image needs npm on the host to fetch the npm packages",
                              hint="apt-get install npm (or run scripts/setup.sh)")
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    prefix = root / "usr/local"
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_config_")}
    env.update(npm_config_update_notifier="false", npm_config_fund="false",
               npm_config_audit="false")
    _run([npm, "install", "--global", "--prefix", str(prefix), "--cache", str(NPM_CACHE),
          "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline",
          "--os", "linux", "--cpu", "x64",
          "--libc", "glibc", *packs.npm_specs()], "npm install", log_file, env=env)
    for folder, script in _postinstall_scripts(prefix / "lib/node_modules"):
        inside = "/" + str(Path(folder).relative_to(root))
        _offline_chroot(root, script, f"install script of {inside}", log_file, cwd=inside)


def _python_tag(root: Path) -> str:
    """``3.11``: the rootfs' python3, whose wheels the host downloads."""
    found = sorted(p.name[len("python"):] for p in (root / "usr/bin").glob("python3.*")
                   if p.name[len("python3."):].isdigit())
    if not found:
        raise ImageBuildError(f"no python3 in the image rootfs {root}")
    return found[-1]


def _install_pip(root: Path, packs: Packages, commands: tuple[str, ...], log_file: Path) -> None:
    """Wheels for the image's Python are downloaded on the host (cached in PIP_CACHE); the
    image's python3 makes a venv at VENV and installs them with --no-index, offline."""
    pyver = _python_tag(root)
    wheels = PIP_CACHE / f"cp{pyver.replace('.', '')}"
    wheels.mkdir(parents=True, exist_ok=True)
    platforms = ["manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64",
                 *(f"manylinux_2_{n}_x86_64" for n in range(17, 37)), "linux_x86_64"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env["PIP_CONFIG_FILE"] = os.devnull      # the host's pip.conf (indexes, constraints) is not ours
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", pyver, "--implementation", "cp",
           "--abi", f"cp{pyver.replace('.', '')}", "--abi", "abi3", "--abi", "none",
           *(a for p in platforms for a in ("--platform", p)), "-d", str(wheels),
           *packs.pip_specs()]
    try:        # everything already in the cache: no index at all
        _run([*cmd, "--no-index", "--find-links", str(wheels)], "pip download (cache)", log_file,
             env=env)
    except ImageBuildError:
        _run(cmd, "pip download", log_file, env=env)
    inside = root / "tmp/coi-wheels"
    shutil.copytree(wheels, inside, dirs_exist_ok=True)
    try:
        specs = " ".join(shlex.quote(s) for s in packs.pip_specs())
        _offline_chroot(root, f"python3 -m venv {VENV} && {VENV}/bin/pip install -q --no-index "
                              f"--find-links /tmp/coi-wheels {specs}", "pip install (offline)",
                        log_file)
    finally:
        shutil.rmtree(inside, ignore_errors=True)
    for command in commands:
        link = root / "usr/local/bin" / command
        link.parent.mkdir(parents=True, exist_ok=True)
        if not (root / VENV.lstrip("/") / "bin" / command).exists():
            raise ImageBuildError(f"pip install made no {VENV}/bin/{command}")
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(f"{VENV}/bin/{command}")


def _apt_versions(root: Path, names: tuple[str, ...]) -> str:
    if not names:
        return ""
    res = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package}=${Version},",
                          *names], capture_output=True, text=True)
    return res.stdout.strip(",")


def _build_debian(v: Variant, work: Path) -> dict[str, str]:
    root = work / "rootfs"
    DEBOOTSTRAP_CACHE.mkdir(parents=True, exist_ok=True)
    log_file = CACHE_DIR / f"build-{v.name}.log"   # kept: the build folder is removed on failure
    log_file.write_bytes(b"")
    log.warning("running debootstrap %s (about a minute; log %s)", SUITE, log_file)
    _run(["debootstrap", "--variant=minbase", f"--cache-dir={DEBOOTSTRAP_CACHE}",
          f"--include={','.join(v.packages)}", SUITE, str(root), MIRROR], "debootstrap", log_file)
    _common_files(root)
    _run(["chroot", str(root), "useradd", "-m", "-u", str(CODE_UID), "-U", "-s", "/bin/bash",
          CODE_USER], "useradd")
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*"):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    if v.agents is None:
        return {}
    packs = v.agents
    if packs.npm:
        log.warning("installing %s into the image (log %s)", ", ".join(packs.npm_specs()), log_file)
        _install_npm(root, packs, log_file)
    if packs.pip:
        log.warning("installing %s into the image (log %s)", ", ".join(packs.pip_specs()), log_file)
        _install_pip(root, packs, v.commands, log_file)
    return {"coi.tools": packs.tool_versions(),
            "coi.npm": ",".join(packs.npm_specs()), "coi.pip": ",".join(packs.pip_specs()),
            "coi.apt": _apt_versions(root, packs.apt)}


def _tarball(v: Variant) -> Path:
    return CACHE_DIR / f"{v.name}-{v.recipe()}.tar.gz"


def build_tarball(v: Variant) -> Path:
    """Build the unified image tarball (metadata.yaml + rootfs) into the cache; return it."""
    if os.geteuid() != 0:
        raise ImageBuildError("building an image needs root (chroot, debootstrap)", hint="run as root")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = _tarball(v)
    work = Path(tempfile.mkdtemp(prefix=f"coi-image-{v.name}-", dir="/var/tmp"))
    try:
        (work / "rootfs").mkdir()
        extra = (_build_debian if v.debootstrap else _build_busybox)(v, work)
        (work / "metadata.yaml").write_text(
            _metadata(v, f"{DESCRIPTION_PREFIX} {v.name} session image", extra))
        partial = out.with_suffix(".partial")
        _run(["tar", "-C", str(work), "--numeric-owner", "-I", "gzip -1", "-cf", str(partial),
              "metadata.yaml", "rootfs"], "tar")
        partial.rename(out)
        for old in CACHE_DIR.glob(f"{v.name}-*.tar.gz"):     # older recipes of this variant
            if old != out:
                old.unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _alias_target(client, alias: str) -> str | None:
    try:
        return raw_get(client, f"images/aliases/{alias}")["target"]
    except IncusError as err:
        if "not found" in str(err).lower():
            return None
        raise


def image_recipe(client, fingerprint: str) -> str | None:
    return raw_get(client, f"images/{fingerprint}").get("properties", {}).get("coi.recipe")


def _point_alias(client, alias: str, fingerprint: str, description: str) -> None:
    with api_call(f"alias {alias}"):
        if _alias_target(client, alias) is None:
            client.api.images.aliases.post(json={"name": alias, "target": fingerprint,
                                                 "description": description})
        else:
            client.api.images.aliases[alias].put(json={"target": fingerprint,
                                                       "description": description})


def import_tarball(client, path: Path, alias: str) -> str:
    """Import a unified tarball through the API (or reuse an identical one); set the alias."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    fingerprint = sha.hexdigest()
    with api_call(f"import {path.name}"):
        if not client.images.exists(fingerprint):
            client.images.create(path.read_bytes(), public=False, wait=True)
    _point_alias(client, alias, fingerprint, f"{DESCRIPTION_PREFIX} session image")
    return fingerprint


def build(client, variant: "str | Variant" = "debian", *, alias: str | None = None,
          force: bool = False, source: str | None = None) -> tuple[str, str]:
    """Make sure ``alias`` points at a current image; returns (what happened, fingerprint).
    ``variant``: a name of :data:`VARIANTS` or a :func:`tool_variant`."""
    if source is not None:
        return "copied", copy_remote(client, source, alias or VARIANTS["debian"].alias)
    if isinstance(variant, Variant):
        v = variant
    else:
        try:
            v = VARIANTS[variant]
        except KeyError:
            raise SessionError(f"unknown image variant {variant!r} (known: {', '.join(VARIANTS)})") from None
    alias = alias or v.alias
    target = _alias_target(client, alias)
    if target is not None and not force and image_recipe(client, target) == v.recipe():
        return "up to date", target
    tarball = _tarball(v)
    what = "imported from cache"
    if force or not tarball.exists():
        build_tarball(v)
        what = "built"
    fingerprint = import_tarball(client, tarball, alias)
    if target is not None and target != fingerprint:
        _drop_replaced(client, target)
    return what, fingerprint


def _drop_replaced(client, fingerprint: str) -> None:
    """The image an alias pointed at before a rebuild: deleted when it is one of ours and no
    alias names it any more (containers made from it keep their own copy)."""
    try:
        info = raw_get(client, f"images/{fingerprint}")
        if info.get("aliases") or not info.get("properties", {}).get("coi.variant"):
            return
        with api_call(f"delete image {fingerprint[:12]}"):
            client.images.get(fingerprint).delete(wait=True)
    except SessionError as err:
        log.warning("the replaced image %s stays: %s", fingerprint[:12], err)


def copy_remote(client, source: str, alias: str) -> str:
    """``images:debian/12`` style: copy from a simplestreams remote the daemon can reach."""
    remotes = {"images": "https://images.linuxcontainers.org"}
    remote, _, name = source.partition(":")
    if not name or remote not in remotes:
        raise SessionError(f"--from {source!r}: use REMOTE:ALIAS with a known remote ({', '.join(remotes)})")
    with api_call(f"copy {source}"):
        image = client.images.create_from_simplestreams(remotes[remote], name, public=False,
                                                        auto_update=False)
    _point_alias(client, alias, image.fingerprint, f"{DESCRIPTION_PREFIX} image from {source}")
    return image.fingerprint


@dataclass(frozen=True, slots=True)
class ImageInfo:
    fingerprint: str
    aliases: tuple[str, ...]
    variant: str
    size: int
    created: str
    status: str          # current | stale | foreign
    tools: str = ""      # "claude=2.1.332": the agents in the image and their versions

    def to_dict(self) -> dict:
        return {"fingerprint": self.fingerprint, "aliases": list(self.aliases),
                "variant": self.variant, "size": self.size, "created": self.created,
                "status": self.status,
                "tools": dict(t.split("=", 1) for t in self.tools.split(",") if "=" in t)}


def list_images(client) -> list[ImageInfo]:
    """coi-sentinel images and any image under a coi/ alias; stale = not the current recipe."""
    out = []
    recipes: dict[str, Variant | None] = {}
    for img in raw_get(client, "images", recursion=1):
        props = img.get("properties", {})
        aliases = tuple(a["name"] for a in img.get("aliases", []))
        variant = props.get("coi.variant", "")
        if not variant and not any(a.startswith("coi/") for a in aliases):
            continue
        if variant not in recipes:
            recipes[variant] = variant_named(variant) if variant else None
        v = recipes[variant]
        status = "foreign" if v is None else "current" if props.get("coi.recipe") == v.recipe() \
            and aliases else "stale"
        out.append(ImageInfo(img["fingerprint"], aliases, variant or "-", int(img.get("size", 0)),
                             str(img.get("created_at", ""))[:19], status,
                             props.get("coi.tools", "")))
    return sorted(out, key=lambda i: (i.status != "current", i.aliases))
