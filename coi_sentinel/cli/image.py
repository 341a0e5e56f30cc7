"""``coi-sentinel image``: build and list the session images."""

from __future__ import annotations

import json

import click


@click.group("image")
def image() -> None:
    """Build and list the images sessions start from (no image server needed).

    \b
    Examples:
      sudo coi-sentinel image build                     # coi/debian12, once
      sudo coi-sentinel image build --tool claude       # coi/claude: Node.js + Claude Code
      sudo coi-sentinel image build --tool all          # one image per agent
      sudo coi-sentinel image build --variant busybox   # small test image
      sudo coi-sentinel image build --variant build     # debian with gcc and make
      sudo coi-sentinel image list --json
    """


TOOL_CHOICES = ["claude", "codex", "opencode", "aider", "all"]


@image.command("build")
@click.option("--variant", type=click.Choice(["debian", "build", "busybox"]), default="debian",
              show_default=True, help="What to build (without --tool).")
@click.option("--tool", "tools", multiple=True, metavar="NAME",
              help="An agent image: the debian image plus the profile's packages at the "
                   "versions of sessions/agents.lock (claude, codex, opencode, aider, any "
                   "profile with an image recipe; 'all' builds each). Repeatable.")
@click.option("--alias", help="Alias to import under (default: coi/debian12, coi/debian12-build, coi/busybox, coi/TOOL).")
@click.option("--force", is_flag=True, help="Rebuild even when the alias is up to date.")
@click.option("--from", "source", metavar="REMOTE:ALIAS",
              help="Copy an image from a remote (e.g. images:debian/12) instead of building.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image built.")
def build(variant: str, tools: tuple[str, ...], alias: str | None, force: bool,
          source: str | None, as_json: bool) -> None:
    """Build an image locally (debootstrap) and import it under a stable alias.

    Does nothing when the alias already points at an image of the current recipe (for an
    agent image the recipe includes the pinned versions: a changed lock rebuilds). npm and pip
    downloads are cached under /var/cache/coi-sentinel, so a rebuild fetches nothing new.

    \b
    Examples:
      sudo coi-sentinel image build
      sudo coi-sentinel image build --tool claude --tool codex
      sudo coi-sentinel image build --tool all --force
      sudo coi-sentinel image build --from images:debian/12 --alias coi/remote
    """
    import time

    from ..sessions import images, profiles
    from ..host import incus

    client = incus.connect_pylxd()     # uploads and simplestreams copies are pylxd's
    jobs: list = []
    if tools:
        names = list(tools)
        if images.ALL_TOOLS in names:
            names = sorted(n for n, p in profiles.load_all().items() if p.image is not None)
        if alias and len(names) > 1:
            raise click.UsageError("--alias names one image; give one --tool with it")
        jobs = [images.tool_variant(n) for n in names]
    else:
        jobs = [variant]
    results = []
    for job in jobs:
        t0 = time.monotonic()
        what, fingerprint = images.build(client, job, alias=alias, force=force, source=source)
        v = job if isinstance(job, images.Variant) else images.VARIANTS[job]
        name = alias or v.alias
        row = {"alias": name, "result": what, "fingerprint": fingerprint,
               "seconds": round(time.monotonic() - t0, 1),
               "tools": v.agents.tool_versions() if v.agents else ""}
        results.append(row)
        if not as_json:
            tools_txt = f" [{row['tools']}]" if row["tools"] else ""
            click.echo(f"{name}: {what} ({fingerprint[:12]}){tools_txt} in {row['seconds']}s")
    if as_json:
        click.echo(json.dumps(results, indent=2))


@image.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, in a list.")
def list_(as_json: bool) -> None:
    """List coi-sentinel images with the agents in them; 'stale' ones were built from an older
    recipe (or lock) and `image build` replaces them.

    \b
    Examples:
      coi-sentinel image list
      coi-sentinel image list --json | jq '.[] | select(.status == "stale")'
      coi-sentinel image list --json | jq '.[].tools'
    """
    from ..sessions import images
    from ..host import incus

    infos = images.list_images(incus.connect())
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    click.echo(f"{'ALIAS':<14} {'FINGERPRINT':<12} {'SIZE':>8} {'STATUS':<7} TOOLS")
    for i in infos:
        tools = i.tools.replace(",", " ") or "-"
        click.echo(f"{(','.join(i.aliases) or '-'):<14} {i.fingerprint[:12]:<12} "
                   f"{i.size / 1e6:>6.1f}MB {i.status:<7} {tools}")
