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
      sudo coi-sentinel image build --variant busybox   # small test image
      sudo coi-sentinel image build --variant build     # debian with gcc and make
      sudo coi-sentinel image list --json
    """


@image.command("build")
@click.option("--variant", type=click.Choice(["debian", "build", "busybox"]), default="debian",
              show_default=True, help="What to build.")
@click.option("--alias", help="Alias to import under (default: coi/debian12 or coi/busybox).")
@click.option("--force", is_flag=True, help="Rebuild even when the alias is up to date.")
@click.option("--from", "source", metavar="REMOTE:ALIAS",
              help="Copy an image from a remote (e.g. images:debian/12) instead of building.")
def build(variant: str, alias: str | None, force: bool, source: str | None) -> None:
    """Build an image locally (debootstrap) and import it under a stable alias.

    Does nothing when the alias already points at an image of the current recipe.

    \b
    Examples:
      sudo coi-sentinel image build
      sudo coi-sentinel image build --force
      sudo coi-sentinel image build --from images:debian/12 --alias coi/remote
    """
    from ..sessions import images, incus

    client = incus.connect()
    what, fingerprint = images.build(client, variant, alias=alias, force=force, source=source)
    name = alias or images.VARIANTS[variant].alias
    click.echo(f"{name}: {what} ({fingerprint[:12]})")


@image.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image, in a list.")
def list_(as_json: bool) -> None:
    """List coi-sentinel images; 'stale' ones were built from an older recipe.

    \b
    Examples:
      coi-sentinel image list
      coi-sentinel image list --json | jq '.[] | select(.status == "stale")'
    """
    from ..sessions import images, incus

    infos = images.list_images(incus.connect())
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    click.echo(f"{'ALIAS':<20} {'FINGERPRINT':<12} {'VARIANT':<8} {'SIZE':>8} {'CREATED':<19} STATUS")
    for i in infos:
        click.echo(f"{(','.join(i.aliases) or '-'):<20} {i.fingerprint[:12]:<12} {i.variant:<8} "
                   f"{i.size / 1e6:>6.1f}MB {i.created:<19} {i.status}")
