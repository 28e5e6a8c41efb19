"""PlanarTo3D Slicer module: 3D 177Lu activity from anterior/posterior planar scintigraphy.

This version imports a planar ANT/POST acquisition (NM DICOM) as volumes and a counts table;
the patient-specific 3D reconstruction arrives with later versions and is not offered before it
exists.
"""

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from DeepDosimetryCore import DeepDosimetryWidgetMixin


class PlanarTo3D(ScriptedLoadableModule):
    """Module description shown in Slicer's module list."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("PlanarTo3D")
        self.parent.categories = ["Nuclear Medicine.DeepDosimetry"]
        self.parent.dependencies = ["DeepDosimetryCore"]
        self.parent.contributors = ["DeepDosimetry developers"]
        self.parent.helpText = _(
            "3D dosimetry imaging from two planar views (Lopez-Montes et al.). This version imports an "
            "anterior/posterior NM planar acquisition: each view becomes a coronal one-slice volume of counts "
            "(the posterior mirrored into the anterior orientation) and a table gives total counts, frame "
            "duration and count rate."
        )
        self.parent.acknowledgementText = _("Method: Lopez-Montes et al., patient-specific AI for 3D dosimetry.")


@parameterNodeWrapper
class PlanarTo3DParameterNode:
    """Inputs and outputs of the PlanarTo3D panel (bound to the .ui by SlicerParameterName)."""

    planarFiles: str
    anteriorVolume: vtkMRMLScalarVolumeNode
    posteriorVolume: vtkMRMLScalarVolumeNode
    countsTable: vtkMRMLTableNode


class PlanarTo3DWidget(DeepDosimetryWidgetMixin, ScriptedLoadableModuleWidget):
    """Collects inputs and shows progress; all computation is in PlanarTo3DLogic."""

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel("PlanarTo3D", PlanarTo3DLogic())

    def missingInputs(self) -> str:
        if not self._parameterNode.planarFiles.strip():
            return _("Enter the planar DICOM file(s), separated by ';'.")
        return ""

    def onApplyButton(self) -> None:
        from PlanarTo3DLib.logic import split_paths

        parameters = self._parameterNode
        nodes = self.runWithProgress(
            lambda progress: self.logic.process(
                split_paths(parameters.planarFiles),
                parameters.anteriorVolume,
                parameters.posteriorVolume,
                parameters.countsTable,
                progress=progress,
            ),
        )
        if nodes is not None:
            parameters.anteriorVolume, parameters.posteriorVolume, parameters.countsTable = nodes
            slicer.util.setSliceViewerLayers(background=nodes[0], fit=True)


class PlanarTo3DLogic(ScriptedLoadableModuleLogic):
    """Runs in batch mode too: no widget, no dialog, no event processing here.

    Usage from the Python console or ``Slicer --no-main-window --python-script``::

        anterior, posterior, table = slicer.util.getModuleLogic("PlanarTo3D").process(["wb.dcm"])
    """

    def getParameterNode(self):
        return PlanarTo3DParameterNode(super().getParameterNode())

    def process(self, paths, anteriorVolume=None, posteriorVolume=None, countsTable=None, progress=None):
        """Import the planar views in ``paths`` into volume nodes and a counts table.

        Given nodes are filled, missing ones are added to the scene. Returns
        ``(anteriorVolume, posteriorVolume, countsTable)``. On invalid input a ValueError naming
        the missing DICOM attribute is raised and nothing is written.
        """
        from PlanarTo3DLib.logic import import_planar

        return import_planar(slicer.mrmlScene, paths, anteriorVolume, posteriorVolume, countsTable, progress)


class PlanarTo3DTest(ScriptedLoadableModuleTest):
    """Self-test: writes a standards-shaped NM ANT/POST file and imports it."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_import_planar()

    def test_import_planar(self):
        import os

        import numpy as np

        from DosimetryCore import io

        rng = np.random.default_rng(7)
        anterior = rng.poisson(30.0, (64, 32))
        posterior = rng.poisson(20.0, (64, 32))
        path = os.path.join(slicer.app.temporaryPath, "PlanarTo3DTest.dcm")
        io.write_planar_dicom(anterior, posterior, path, pixel_spacing_mm=(4.8, 4.4), frame_duration_s=600.0)
        anteriorNode, posteriorNode, table = PlanarTo3DLogic().process([path])
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(anteriorNode)[0], anterior)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(posteriorNode)[0], posterior)
        self.assertEqual(anteriorNode.GetSpacing()[:2], (4.4, 4.8))
        self.assertEqual(table.GetCellText(0, 0), "anterior")
        self.assertAlmostEqual(float(table.GetCellText(0, 1)), float(anterior.sum()))
        self.delayDisplay("PlanarTo3D import test passed")
