"""The container image (Dockerfile) and orthanc.json.example, which it copies
to /etc/orthanc/orthanc.json, name the same files, and those files exist."""
import re
from pathlib import Path

from test_config import _example

REPO = Path(__file__).resolve().parents[2]
SOURCE = "/opt/orthanc-gnuhealth/src"  # where the Dockerfile copies the checkout
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _env(name):
    return re.search(rf"\b{name}=(\S+)", DOCKERFILE).group(1)


def test_every_file_the_dockerfile_names_exists():
    named = set(re.findall(rf"{SOURCE}/([\w./-]+)", DOCKERFILE))
    assert {"scripts/install.sh", "orthanc.json.example"} <= named
    for path in named:
        assert (REPO / path).is_file(), path
    # install.sh's own helpers, run in the image as in a checkout.
    install = (REPO / "scripts/install.sh").read_text()
    for path in re.findall(r'"\$here/([\w./-]+)"', install):
        assert (REPO / path).is_file(), path


def test_the_example_configuration_names_the_image_files():
    _, example = _example()
    # The plugin as pip installs it into the image's venv.
    venv = _env("VENV")
    script = example["PythonScript"]
    assert script.startswith(f"{venv}/lib/python3.11/site-packages/"), script
    assert (REPO / script.split("site-packages/")[1]).is_file()
    # OHIF, where install.sh puts it in the image, served at /ohif.
    assert example["ServeFolders"] == {"/ohif": _env("OHIF_DIR")}
    plugins = [Path(p).name for p in example["Plugins"]]
    # The plugin answers OHIF's pages only if Orthanc loads it first.
    assert plugins.index("libOrthancPython.so") < plugins.index("libServeFolders.so")
    assert "libOrthancDicomWeb.so" in plugins  # OHIF's data source
    # Debian's packages that install.sh installs provide them (this machine
    # ran install.sh too).
    for path in example["Plugins"]:
        assert Path(path).is_file(), path
