"""`make publish` pushes the built book to the gh-pages branch of a remote (here a local bare repository)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None, reason="needs git and make")


IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_publish(project: Path, remote: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), "publish", f"REMOTE={remote}", f"BIN={Path(sys.executable).parent}"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, **IDENTITY},
    )


def test_make_publish_pushes_the_built_book_to_gh_pages(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    git("init", "--bare", "-q", str(remote), cwd=tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    git("init", "-q", cwd=project)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "main", cwd=project)
    assert make_publish(project, remote).returncode == 2  # nothing built yet: a clear refusal
    html = project / "_build" / "html"
    (html / "_static").mkdir(parents=True)
    (html / "index.html").write_text("<html>the book</html>")
    (html / "_static" / "style.css").write_text("body {}")
    done = make_publish(project, remote)
    assert done.returncode == 0, done.stderr
    files = git("ls-tree", "-r", "--name-only", "gh-pages", cwd=remote).split()
    assert sorted(files) == [".nojekyll", "_static/style.css", "index.html"]
    assert git("show", "gh-pages:index.html", cwd=remote) == "<html>the book</html>"
