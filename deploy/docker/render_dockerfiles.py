"""Write (or check) connectors/<dir>/Dockerfile from Dockerfile.connector.template and images.toml.

Every connector image is built the same way, so their Dockerfiles are generated, not hand-edited:

    python deploy/docker/render_dockerfiles.py           # write the Dockerfile of every connector directory present
    python deploy/docker/render_dockerfiles.py --check   # exit 1 when one is missing or differs (what CI runs)

A connector directory that does not exist yet is skipped (connectors land one by one).
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on any difference")
    args = parser.parse_args(argv)
    problems = []
    for image in load_images():
        if not image.templated or not (ROOT / image.dir).is_dir():
            continue
        wanted = render(image)
        current = image.dockerfile.read_text() if image.dockerfile.exists() else None
        if current == wanted:
            continue
        rel = image.dockerfile.relative_to(ROOT)
        if args.check:
            problems.append(f"{rel}: {'missing' if current is None else 'differs from the template'}")
        else:
            image.dockerfile.write_text(wanted)
            print(f"wrote {rel}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("fix: python deploy/docker/render_dockerfiles.py", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
