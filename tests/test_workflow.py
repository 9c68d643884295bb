"""The GitHub Actions workflow that builds, tests and publishes the book (.github/workflows/book.yml).

A broken workflow file fails only on GitHub, after a push. These tests catch it here: the file is validated against
SchemaStore's GitHub-workflow JSON schema (vendored, so offline, by ``check-jsonschema``; actionlint has no package
that installs without downloading a binary), and then for what the schema cannot know: jobs that ``needs`` refers to
exist, every action is pinned to a version, the build job runs the repository's CI script (which builds with ``-W``
and runs pytest) and uploads the folder Jupyter Book writes, the deploy job has the permissions and environment
GitHub Pages requires and runs only on the branch of ``_config.yml``, and the README links the address the site
gets. Each check is also fed a broken copy that it must report.
"""
from __future__ import annotations

import copy
import importlib.resources
import json
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def load_workflow(path: Path = WORKFLOW) -> dict:
    doc = yaml.safe_load(path.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def workflow_schema() -> dict:
    try:
        files = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        if IN_CI:
            pytest.fail("CI must validate the workflow, but check-jsonschema is not installed")
        pytest.skip("check-jsonschema is not installed (pip install -r requirements.txt)")
    return json.loads((files / "github-workflows.json").read_text())


def site_url(root: Path = ROOT) -> tuple[str, str]:
    """(url, branch) of the published book, derived from _config.yml's repository url."""
    repo = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    owner, name = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)/?", repo["url"]).groups()
    return f"https://{owner}.github.io/{name}/", repo.get("branch", "main")


def schema_problems(doc: dict, schema: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    return [f"schema: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:160]}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def _uses(job: dict, action: str) -> list[dict]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).split("@")[0] == action]


def semantic_problems(doc: dict, root: Path = ROOT) -> list[str]:
    problems = []
    jobs = doc.get("jobs", {})
    for name, job in jobs.items():
        needs = job.get("needs", [])
        for dep in [needs] if isinstance(needs, str) else needs:
            if dep not in jobs:
                problems.append(f"job {name} needs unknown job {dep!r}")
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses and not re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", uses):
                problems.append(f"job {name}: action {uses!r} is not pinned to a version")
    builds = [n for n, j in jobs.items() if _uses(j, "actions/upload-pages-artifact")]
    deploys = [n for n, j in jobs.items() if _uses(j, "actions/deploy-pages")]
    if len(builds) != 1 or len(deploys) != 1:
        return problems + [f"expected one job uploading the site and one deploying it, got {builds} and {deploys}"]
    build, deploy = jobs[builds[0]], jobs[deploys[0]]
    runs = " ".join(str(s.get("run", "")) for s in build.get("steps", []))
    if ".ci/run" not in runs:
        problems.append("the build job does not run .ci/run")
    ci_script = (root / ".ci" / "run").read_text()
    if not re.search(r"^jupyter-book build \. -W", ci_script, re.M) or not re.search(r"^pytest", ci_script, re.M):
        problems.append(".ci/run does not build the book with -W and run pytest")
    if _uses(build, "actions/upload-pages-artifact")[0].get("with", {}).get("path") != "_build/html":
        problems.append("the uploaded site is not _build/html, where jupyter-book builds it")
    if builds[0] not in ([deploy["needs"]] if isinstance(deploy.get("needs"), str) else deploy.get("needs", [])):
        problems.append(f"the deploy job does not wait for {builds[0]}")
    perms = deploy.get("permissions", {})
    if perms.get("pages") != "write" or perms.get("id-token") != "write":
        problems.append("the deploy job needs permissions pages: write and id-token: write")
    env = deploy.get("environment", {})
    if (env.get("name") if isinstance(env, dict) else env) != "github-pages":
        problems.append("the deploy job must use the github-pages environment")
    _, branch = site_url(root)
    if f"refs/heads/{branch}" not in str(deploy.get("if", "")):
        problems.append(f"the deploy job does not run only on {branch} (the branch of _config.yml)")
    if branch not in doc.get("on", {}).get("push", {}).get("branches", []):
        problems.append(f"the workflow does not run on pushes to {branch}")
    return problems


def test_workflow_matches_the_github_schema():
    assert schema_problems(load_workflow(), workflow_schema()) == []


def test_workflow_builds_tests_and_deploys_the_book():
    assert semantic_problems(load_workflow()) == []


def test_readme_links_the_published_site():
    url, _ = site_url()
    assert url == "https://setr-edu.github.io/setr-edu/"
    assert url in (ROOT / "README.md").read_text(), f"README.md does not link the book's site {url}"


def test_schema_check_reports_a_planted_error():
    doc = load_workflow()
    del doc["jobs"]["build"]["runs-on"]
    doc["jobs"]["deploy"]["steps"][0]["with"] = "not a mapping"
    problems = schema_problems(doc, workflow_schema())
    assert any(p.startswith("schema: jobs/build:") for p in problems), problems
    assert any(p.startswith("schema: jobs/deploy:") for p in problems), problems
    assert len(problems) == 2, problems


@pytest.mark.parametrize("break_it, expected", [
    (lambda d: d["jobs"]["deploy"].update(needs="bild"), "job deploy needs unknown job 'bild'"),
    (lambda d: d["jobs"]["build"]["steps"][0].update(uses="actions/checkout"),
     "job build: action 'actions/checkout' is not pinned to a version"),
    (lambda d: d["jobs"]["build"]["steps"][1].update(run="pytest"), "the build job does not run .ci/run"),
    (lambda d: d["jobs"]["build"]["steps"][-1]["with"].update(path="_build"),
     "the uploaded site is not _build/html, where jupyter-book builds it"),
    (lambda d: d["jobs"]["deploy"]["permissions"].pop("id-token"),
     "the deploy job needs permissions pages: write and id-token: write"),
    (lambda d: d["jobs"]["deploy"].update(environment="pages"), "the deploy job must use the github-pages environment"),
    (lambda d: d["jobs"]["deploy"].pop("if"), "the deploy job does not run only on main (the branch of _config.yml)"),
])
def test_semantic_check_reports_planted_breakage(break_it, expected):
    doc = copy.deepcopy(load_workflow())
    break_it(doc)
    assert expected in semantic_problems(doc)
