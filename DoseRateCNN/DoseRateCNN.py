"""DoseRateCNN Slicer module: absorbed dose rate from 177Lu SPECT activity and CT.

This version computes the CT-derived mass density map (g/cm3) on the activity grid, the density
used to scale voxel-dose-kernel dose rates; the dose-rate methods arrive with later versions and
are not offered before they exist.
"""

import slicer
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from DeepDosimetryCore import DeepDosimetryWidgetMixin

REQUIRED_PACKAGES = {"numpy": "numpy", "SimpleITK": "SimpleITK", "torch": "torch", "xraydb": "xraydb"}


class DoseRateCNN(ScriptedLoadableModule):
    """Module description shown in Slicer's module list."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DoseRateCNN")
        self.parent.categories = ["Nuclear Medicine.DeepDosimetry"]
        self.parent.dependencies = ["DeepDosimetryCore"]
        self.parent.contributors = ["DeepDosimetry developers"]
        self.parent.helpText = _(
            "Voxel dosimetry with a deep residual network (Li et al.). This version computes the mass density "
            "(g/cm3) from CT with the bilinear calibration of Li et al. (eq. 1), resampled onto the activity grid."
        )
        self.parent.acknowledgementText = _("Method: Li, Fessler, Mikell, Wilderman, Dewaraja.")


@parameterNodeWrapper
class DoseRateCNNParameterNode:
    """Inputs and outputs of the DoseRateCNN panel (bound to the .ui by SlicerParameterName)."""

    ctVolume: vtkMRMLScalarVolumeNode
    activityVolume: vtkMRMLScalarVolumeNode
    densityVolume: vtkMRMLScalarVolumeNode


class DoseRateCNNWidget(DeepDosimetryWidgetMixin, ScriptedLoadableModuleWidget):
    """Collects inputs and shows progress; all computation is in DoseRateCNNLogic."""

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel("DoseRateCNN", DoseRateCNNLogic(), defaultInputParameter="ctVolume")

    def missingInputs(self) -> str:
        return "" if self._parameterNode.ctVolume else _("Select a CT volume.")

    def onApplyButton(self) -> None:
        parameters = self._parameterNode
        density = self.runWithProgress(
            REQUIRED_PACKAGES,
            lambda progress: self.logic.process(
                parameters.ctVolume, parameters.activityVolume, parameters.densityVolume, progress=progress
            ),
        )
        if density is not None:
            parameters.densityVolume = density
            slicer.util.setSliceViewerLayers(background=density, fit=True)


class DoseRateCNNLogic(ScriptedLoadableModuleLogic):
    """Runs in batch mode too: no widget, no dialog, no event processing here.

    Usage from the Python console or ``Slicer --no-main-window --python-script``::

        density = slicer.util.getModuleLogic("DoseRateCNN").process(ctNode, activityNode)
    """

    def getParameterNode(self):
        return DoseRateCNNParameterNode(super().getParameterNode())

    def process(self, ctVolume, activityVolume=None, densityVolume=None, progress=None):
        """Write the mass density (g/cm3) of ``ctVolume`` into a volume node and return it.

        On ``activityVolume``'s grid when given. ``densityVolume`` is filled when given, else a
        new node is added. Inputs are never modified; invalid input raises a ValueError.
        """
        from DoseRateCNNLib.logic import density_map

        return density_map(ctVolume, activityVolume, densityVolume, progress=progress)


class DoseRateCNNTest(ScriptedLoadableModuleTest):
    """Self-test: density of a water/bone/air CT against the published calibration."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_density_map()

    def test_density_map(self):
        import numpy as np
        import SimpleITK as sitk

        from DosimetryCore import mrml, tissue

        hu = np.zeros((8, 10, 12), np.float32)
        hu[:, :, :4] = -1000.0
        hu[:, :, 8:] = 1000.0
        image = sitk.GetImageFromArray(hu)
        image.SetSpacing((2.0, 2.0, 3.0))
        ct = mrml.add_volume_node(slicer.mrmlScene, image, "CT")
        density = slicer.util.arrayFromVolume(DoseRateCNNLogic().process(ct))
        self.assertAlmostEqual(float(density[0, 0, 6]), 1.02351, places=5)
        self.assertAlmostEqual(float(density[0, 0, 10]), 0.00069 * 1000 + 1.03107, places=5)
        self.assertAlmostEqual(float(density[0, 0, 0]), tissue.AIR_DENSITY_G_PER_CM3, places=7)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(ct), hu)
        self.delayDisplay("DoseRateCNN density test passed")
