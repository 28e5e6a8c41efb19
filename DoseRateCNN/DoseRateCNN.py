"""DoseRateCNN Slicer module: absorbed dose rate from 177Lu SPECT activity and CT.

This version computes the dose rate with DosimetryCore's methods: voxel dose kernels with density
scaling (the baseline of Li et al.), local energy deposition and Monte Carlo, with a per-segment
table. The residual CNN correction arrives with a later version and is not offered before it exists.
"""

from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from DeepDosimetryCore import DEVICES, DeepDosimetryWidgetMixin
from DoseRateCNNLib.constants import METHODS


class DoseRateCNN(ScriptedLoadableModule):
    """Module description shown in Slicer's module list."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DoseRateCNN")
        self.parent.categories = ["Nuclear Medicine.DeepDosimetry"]
        self.parent.dependencies = ["DeepDosimetryCore"]
        self.parent.contributors = ["DeepDosimetry developers"]
        self.parent.helpText = _(
            "Voxel dosimetry of 177Lu (Li et al.). This version computes the absorbed dose rate (Gy/h) from a "
            "SPECT activity volume (Bq/mL) and a CT: voxel S-value kernels of the activity voxel size with density "
            "scaling (vdk), local deposition of the electron energy (led), or the project's Monte Carlo (mc). "
            "With a segmentation, a table gives each segment's mean, maximum and D2/D50/D98 % dose rates."
        )
        self.parent.acknowledgementText = _("Method: Li, Fessler, Mikell, Wilderman, Dewaraja.")


@parameterNodeWrapper
class DoseRateCNNParameterNode:
    """Inputs and outputs of the DoseRateCNN panel (bound to the .ui by SlicerParameterName)."""

    activityVolume: vtkMRMLScalarVolumeNode
    ctVolume: vtkMRMLScalarVolumeNode
    method: Annotated[str, Choice(list(METHODS))] = "vdk"
    segmentation: vtkMRMLSegmentationNode
    device: Annotated[str, Choice(DEVICES)] = "auto"
    outputVolume: vtkMRMLScalarVolumeNode
    outputTable: vtkMRMLTableNode


class DoseRateCNNWidget(DeepDosimetryWidgetMixin, ScriptedLoadableModuleWidget):
    """Collects inputs and shows progress; all computation is in DoseRateCNNLogic."""

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel("DoseRateCNN", DoseRateCNNLogic(), defaultInputParameter="activityVolume")

    def missingInputs(self) -> str:
        if not self._parameterNode.activityVolume:
            return _("Select the activity volume.")
        if not self._parameterNode.ctVolume:
            return _("Select the CT volume.")
        return ""

    def onApplyButton(self) -> None:
        parameters = self._parameterNode
        outputs = self.runWithProgress(
            lambda progress: self.logic.process(
                parameters.activityVolume,
                parameters.ctVolume,
                parameters.method,
                parameters.segmentation,
                device=parameters.device,
                outputVolume=parameters.outputVolume,
                outputTable=parameters.outputTable,
                progress=progress,
            ),
        )
        if outputs is not None:
            parameters.outputVolume, table = outputs
            if table is not None:
                parameters.outputTable = table
            slicer.util.setSliceViewerLayers(foreground=parameters.outputVolume, foregroundOpacity=0.5)


class DoseRateCNNLogic(ScriptedLoadableModuleLogic):
    """Runs in batch mode too: no widget, no dialog, no event processing here.

    Usage from the Python console or ``Slicer --no-main-window --python-script``::

        doseRate, table = slicer.util.getModuleLogic("DoseRateCNN").process(spectNode, ctNode, "vdk", segNode)
    """

    def getParameterNode(self):
        return DoseRateCNNParameterNode(super().getParameterNode())

    def process(
        self,
        activityVolume,
        ctVolume,
        method="vdk",
        segmentation=None,
        device="auto",
        outputVolume=None,
        outputTable=None,
        progress=None,
    ):
        """Write the dose rate (Gy/h) of ``activityVolume`` into a volume node (and a segment table).

        Returns ``(doseRateVolume, table or None)``. Inputs are never modified; invalid input raises
        a ValueError and nothing is written.
        """
        from DoseRateCNNLib.logic import dose_rate_map

        return dose_rate_map(
            activityVolume,
            ctVolume,
            method,
            segmentation,
            device=None if device == "auto" else device,
            output_volume=outputVolume,
            output_table=outputTable,
            progress=progress,
        )


class DoseRateCNNTest(ScriptedLoadableModuleTest):
    """Self-test: VDK and LED dose rates of a uniform source in water against the local-deposition value."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_dose_rate()

    def test_dose_rate(self):
        import numpy as np
        import SimpleITK as sitk

        from DosimetryCore.core.constants import J_PER_MEV, SECONDS_PER_HOUR
        from DosimetryCore.core.metadata import UNIT_KEY
        from DosimetryCore.io import mrml
        from DosimetryCore.physics.nuclides import load_nuclide

        activity = np.zeros((24, 24, 24), np.float32)
        activity[8:16, 8:16, 8:16] = 1e6
        image = sitk.GetImageFromArray(activity)
        image.SetSpacing((4.8, 4.8, 4.8))
        image.SetMetaData(UNIT_KEY, "Bq/mL")
        spect = mrml.add_volume_node(slicer.mrmlScene, image, "SPECT")
        hu = np.full(activity.shape, -1000.0, np.float32)
        hu[2:22, 2:22, 2:22] = 0.0  # a water body in air
        ct_image = sitk.GetImageFromArray(hu)
        ct_image.SetSpacing((4.8, 4.8, 4.8))
        ct = mrml.add_volume_node(slicer.mrmlScene, ct_image, "CT")
        labels = sitk.Cast(image > 0, sitk.sitkUInt8)
        segmentation = mrml.add_segmentation_node(slicer.mrmlScene, labels, {1: "source"}, "Segments")
        before = slicer.util.arrayFromVolume(spect).copy()
        lutetium = load_nuclide("Lu-177")
        electron_MeV = lutetium.mean_energy_per_decay_MeV("beta") + lutetium.mean_energy_per_decay_MeV("electron")
        led_expected = 1e6 * electron_MeV * J_PER_MEV * SECONDS_PER_HOUR / (1.02351e-3)  # Gy/h in water, 1 mL
        led, _ = DoseRateCNNLogic().process(spect, ct, "led")
        self.assertAlmostEqual(float(slicer.util.arrayFromVolume(led)[12, 12, 12]) / led_expected, 1.0, places=3)
        vdk, table = DoseRateCNNLogic().process(spect, ct, "vdk", segmentation)
        centre = float(slicer.util.arrayFromVolume(vdk)[12, 12, 12])
        self.assertGreater(centre, 0.9 * led_expected)
        self.assertEqual(table.GetCellText(0, 0), "source")
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(spect), before)
        self.delayDisplay("DoseRateCNN dose-rate test passed")
