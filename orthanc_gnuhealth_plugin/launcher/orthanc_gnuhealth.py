"""The script Orthanc's "PythonScript" points at.

Orthanc's embedded Python is Debian's /usr/bin/python3, which knows
neither this package nor its dependencies (proteus...): put them on
sys.path, then hand over to the bridge.
"""
import os
import site
import sys

# .../<parent>/orthanc_gnuhealth_plugin/launcher/orthanc_gnuhealth.py
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _venv_site_packages():
    """site-packages of the venv holding the dependencies, or None.

    ORTHANC_GNUHEALTH_VENV names it; else a .venv beside the package (an
    editable checkout); else none is needed because the package was
    installed into the venv and its parent folder is site-packages.
    """
    venv = os.environ.get("ORTHANC_GNUHEALTH_VENV") or os.path.join(_PACKAGE_PARENT, ".venv")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = os.path.join(venv, "lib", version, "site-packages")
    if os.path.isdir(path):
        return path
    if os.environ.get("ORTHANC_GNUHEALTH_VENV"):
        # Orthanc's log is not reachable before the import below: stderr.
        print(f"orthanc_gnuhealth: ORTHANC_GNUHEALTH_VENV={venv} has no {path}; "
              f"point it at the venv made from /usr/bin/python3", file=sys.stderr)
    return None


if _PACKAGE_PARENT not in sys.path:
    sys.path.insert(0, _PACKAGE_PARENT)
_SITE_PACKAGES = _venv_site_packages()
if _SITE_PACKAGES:
    site.addsitedir(_SITE_PACKAGES)
# pydicom imports numpy whenever it is installed, for pixel data the plugin
# never reads: ~12 MB of Orthanc's memory for nothing (docs/benchmarks.md,
# "Memory"). None in sys.modules makes `import numpy` fail, as if absent.
sys.modules.setdefault("numpy", None)

try:
    from orthanc_gnuhealth_plugin import orthanc_bridge
except ImportError as error:
    # An exception here would stop Orthanc itself: the PACS must keep
    # running without the sync, so report and give up.
    print(f"orthanc_gnuhealth: GNU Health plugin disabled, cannot import it ({error}); "
          f"install its dependencies in the venv named by ORTHANC_GNUHEALTH_VENV",
          file=sys.stderr)
else:
    orthanc_bridge.register()
