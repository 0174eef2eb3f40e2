"""Cases from other systems: matRad / pyRadPlan workspaces, PortPy folders, DICOM CT + RTSTRUCT.

Each importer returns an `ImportedCase` (the case plus what was read, how it was mapped and
what was not imported); docs/formats/ has one page per format.
"""

from specc.case.importers.dicom import import_dicom
from specc.case.importers.matrad import import_matrad
from specc.case.importers.portpy import import_portpy
from specc.case.importers.report import ImportedCase

__all__ = ["ImportedCase", "import_dicom", "import_matrad", "import_portpy"]
