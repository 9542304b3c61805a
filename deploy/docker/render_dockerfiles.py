"""Write (or check) connectors/<dir>/Dockerfile from Dockerfile.connector.template and images.toml.

Every connector image is built the same way, so their Dockerfiles are generated, not hand-edited:

    python deploy/docker/render_dockerfiles.py           # write the Dockerfile of every connector present
    python deploy/docker/render_dockerfiles.py --check   # exit 1 when one is missing or differs

A connector whose directory (with its pyproject.toml) does not exist yet is skipped: connectors land
one by one.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TEMPLATE = HERE / "Dockerfile.connector.template"
IMAGES = HERE / "images.toml"


@dataclass(frozen=True)
class Image:
    name: str
    dir: str
    ports: tuple[int, ...]
    description: str
    templated: bool

    @property
    def dockerfile(self) -> Path:
        return ROOT / self.dir / "Dockerfile"


def load_images() -> list[Image]:
    data = tomllib.loads(IMAGES.read_text())
    return [
        Image(
            name=i["name"],
            dir=i["dir"],
            ports=tuple(i["ports"]),
            description=i["description"],
            templated=i.get("templated", True),
        )
        for i in data["image"]
    ]


def render(image: Image) -> str:
    http_ports = [p for p in image.ports if p != 9090]
    comment = "9090 metrics, /health, /ready"
    if http_ports:
        comment = f"{', '.join(map(str, http_ports))} service HTTP; " + comment
    text = TEMPLATE.read_text()
    for key, value in {
        "@NAME@": image.name,
        "@DIR@": image.dir,
        "@DESCRIPTION@": image.description,
        "@PORTS@": " ".join(str(p) for p in image.ports),
        "@PORTS_COMMENT@": comment,
    }.items():
        text = text.replace(key, value)
    return text


def member_images() -> list[Image]:
    """Templated images whose member directory exists (with its pyproject.toml)."""
    return [i for i in load_images() if i.templated and (ROOT / i.dir / "pyproject.toml").is_file()]


def state(image: Image) -> str:
    """ "ok", "missing" or "differs"."""
    if not image.dockerfile.exists():
        return "missing"
    return "ok" if image.dockerfile.read_text() == render(image) else "differs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on any difference")
    args = parser.parse_args(argv)
    problems = []
    for image in member_images():
        current = state(image)
        if current == "ok":
            continue
        rel = image.dockerfile.relative_to(ROOT)
        if args.check:
            problems.append(f"{rel}: {'missing' if current == 'missing' else 'differs from the template'}")
        else:
            image.dockerfile.write_text(render(image))
            print(f"wrote {rel}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("fix: python deploy/docker/render_dockerfiles.py", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
