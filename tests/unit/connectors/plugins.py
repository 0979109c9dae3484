"""Helpers that install a channel-driver plugin for a test: a .dist-info on sys.path, or a real pip install."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.util import find_spec
from pathlib import Path

ECHO_PROJECT = Path(__file__).parent / "data" / "sb_echo_driver"


def project_entry_points(project: Path) -> dict[str, dict[str, str]]:
    """The [project.entry-points] tables of a pyproject.toml: group -> name -> object reference."""
    with (project / "pyproject.toml").open("rb") as handle:
        entry_points: dict[str, dict[str, str]] = tomllib.load(handle)["project"]["entry-points"]
    return entry_points


def entry_points_txt(groups: dict[str, dict[str, str]]) -> str:
    """entry_points.txt as the packaging spec writes it."""
    return "".join(f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in names.items()) + "\n"
                   for group, names in groups.items())


def write_dist_info(site: Path, name: str, version: str, groups: dict[str, dict[str, str]]) -> Path:
    """A minimal installed-distribution record: what importlib.metadata reads to find entry points."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    (dist_info / "entry_points.txt").write_text(entry_points_txt(groups), encoding="utf-8")
    return dist_info


def install_echo_as_dist_info(site: Path) -> None:
    """Copies the package and writes its .dist-info from its own pyproject: no pip, no build."""
    shutil.copytree(ECHO_PROJECT / "sb_echo_driver", site / "sb_echo_driver")
    write_dist_info(site, "sb-echo-driver", "0.1.0", project_entry_points(ECHO_PROJECT))


def pip_install_echo(target: Path, scratch: Path) -> str:
    """Installs the project with pip --target; from source when setuptools and wheel can build offline,
    else from a wheel assembled here (pip installs wheels without any build backend). Returns which way."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--disable-pip-version-check",
           "--target", str(target)]
    if find_spec("setuptools") is not None and find_spec("wheel") is not None:
        source = scratch / "src"
        shutil.copytree(ECHO_PROJECT, source)  # pip builds in place; keep the repository clean
        subprocess.run([*pip, "--no-build-isolation", str(source)], check=True, capture_output=True, timeout=120)
        return "source"
    subprocess.run([*pip, str(build_echo_wheel(scratch))], check=True, capture_output=True, timeout=120)
    return "wheel"


def build_echo_wheel(out: Path) -> Path:
    """A spec-conforming pure-Python wheel of the echo project (METADATA, WHEEL, entry_points.txt, RECORD)."""
    dist_info = "sb_echo_driver-0.1.0.dist-info"
    files = {f"sb_echo_driver/{path.name}": path.read_bytes()
             for path in sorted((ECHO_PROJECT / "sb_echo_driver").glob("*.py"))}
    files[f"{dist_info}/METADATA"] = b"Metadata-Version: 2.1\nName: sb-echo-driver\nVersion: 0.1.0\n"
    files[f"{dist_info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: switchboard-tests\nRoot-Is-Purelib: true\n"
                                   b"Tag: py3-none-any\n")
    files[f"{dist_info}/entry_points.txt"] = entry_points_txt(project_entry_points(ECHO_PROJECT)).encode()
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    files[f"{dist_info}/RECORD"] = record.getvalue().encode()
    wheel = out / "sb_echo_driver-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel
