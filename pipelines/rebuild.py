"""`tokenmill rebuild`: a new version only when something changed; publish it; prune old ones.

The launcher plans the build, whose fingerprint covers the inputs (sizes and
content hashes, or object-store checksums), the tokenizer, the whole config and
the code. If the version `LATEST` names has the same fingerprint and all its
files, the corpus is up to date and no pipeline runs. Otherwise the pipeline
builds a new version, verifies every file, writes the manifest, moves
`LATEST` and prunes (`transforms.manifest.Publish`), all inside the job: a
Dataflow Flex Template launcher does not wait for the job, so nothing may be
left for it to do afterwards.

A template launch must submit a job even when nothing changed (a launcher
that exits without one fails the launch), so there the job verifies the
published version instead.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

from pipelines.build import BuildPlan, plan_build, run_plan
from pipelines.config import BuildConfig
from pipelines.verify import VerifyVersion, listing_problems
from transforms.manifest import VERSIONS, Retention, read_latest, read_manifest
from transforms.storage import join

DEFAULT_KEEP = 3


@dataclasses.dataclass(frozen=True)
class Published:
    """The version `LATEST` names, as the launcher found it."""

    name: str
    version_dir: str
    manifest: dict[str, Any] | None
    problems: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class RebuildOutcome:
    """What a rebuild did: found the corpus `up_to_date` (then at most a `verification_job` ran) or built a new version."""

    up_to_date: bool
    version: str
    location: str
    manifest: dict[str, Any] | None
    reason: str
    verification_job: bool = False


def published(output: str) -> Published | None:
    """The version `LATEST` names, with its manifest and what a listing shows missing; None before the first publish."""
    name = read_latest(output)
    if name is None:
        return None
    version_dir = join(output, VERSIONS, name)
    try:
        manifest = read_manifest(version_dir)
    except ValueError:
        return Published(name, version_dir, None, ("manifest.json is not valid JSON",))
    problems = tuple(listing_problems(version_dir, manifest)) if manifest else ("no manifest.json",)
    return Published(name, version_dir, manifest, problems)


def why_rebuild(plan: BuildPlan, current: Published | None) -> str | None:
    """Why the plan needs a new version, or None when the published one is what it would build."""
    if current is None:
        return "nothing is published yet"
    if current.problems:
        return f"{current.name} is damaged ({current.problems[0]}{', ...' if len(current.problems) > 1 else ''})"
    if current.manifest.get("fingerprint") != plan.fingerprint:
        return f"the inputs, tokenizer, config or code changed since {current.name}"
    return None


def is_template_launch(beam_args: Sequence[str]) -> bool:
    """A template launcher (Flex or classic) passes --template_location: it expects a job, not an exit."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    return bool(PipelineOptions(list(beam_args)).view_as(GoogleCloudOptions).template_location)


def run_rebuild(config: BuildConfig, keep: int = DEFAULT_KEEP, beam_args: Sequence[str] = (), show_progress: bool = True, quiet: bool = True) -> RebuildOutcome:
    """Build, verify, publish and prune if anything changed; otherwise do nothing (see the module doc)."""
    from runners.local import run

    launched_at = time.time()
    plan = plan_build(config)
    current = published(plan.output)
    reason = why_rebuild(plan, current)
    if reason is None:
        verification_job = is_template_launch(beam_args)
        if verification_job:
            run(lambda p, _: p | VerifyVersion(current.version_dir, current.manifest), beam_args, 0, show_progress, quiet)
        return RebuildOutcome(True, current.name, current.version_dir, current.manifest, f"{current.name} has the same fingerprint", verification_job)
    manifest, location = run_plan(plan, beam_args, show_progress, quiet, Retention(keep, launched_at))
    return RebuildOutcome(False, plan.version, location, manifest, reason)
