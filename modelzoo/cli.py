"""``vigil build``: the torch side of the CLI, imported only when a build is asked for."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from modelzoo.build import BuildOptions, build_all
from modelzoo.manifest import load_manifest

logger = logging.getLogger(__name__)


def build(args: argparse.Namespace) -> int:
    """Build the manifest's archives (or those named) into the export directory."""
    specs = load_manifest(Path(args.manifest))
    if args.only:
        unknown = set(args.only) - {spec.name for spec in specs}
        if unknown:
            raise SystemExit(f"not in the manifest: {', '.join(sorted(unknown))}")
        specs = [spec for spec in specs if spec.name in args.only]
    options = BuildOptions(export_dir=Path(args.export_dir), size=args.size)
    for built in build_all(specs, options):
        print(f"{built.path}  (traced vs eager max |diff| {built.max_difference:.1e})")
    return 0
