"""DLPVC Slicer module: partial-volume correction of quantitative 177Lu SPECT.

This version reports the activity in each segment of a SPECT volume (Bq/mL); the correction
methods arrive with later versions and are not offered before they exist.
"""

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from DeepDosimetryCore import DeepDosimetryWidgetMixin

REQUIRED_PACKAGES = {"numpy": "numpy", "scipy": "scipy", "SimpleITK": "SimpleITK"}


class DLPVC(ScriptedLoadableModule):
    """Module description shown in Slicer's module list."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DLPVC")
        self.parent.categories = ["Nuclear Medicine.DeepDosimetry"]
        self.parent.dependencies = ["DeepDosimetryCore"]
        self.parent.contributors = ["DeepDosimetry developers"]
        self.parent.helpText = _(
            "Partial-volume correction of quantitative 177Lu SPECT (Leube et al., J Nucl Med 2024). "
            "This version computes the volume (mL), mean and maximum activity concentration (Bq/mL) and "
            "activity (MBq) in each segment of a SPECT volume."
        )
        self.parent.acknowledgementText = _("Method: Leube et al., J Nucl Med 2024.")


@parameterNodeWrapper
class DLPVCParameterNode:
    """Inputs and outputs of the DLPVC panel (bound to the .ui by SlicerParameterName)."""

    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    outputTable: vtkMRMLTableNode


class DLPVCWidget(DeepDosimetryWidgetMixin, ScriptedLoadableModuleWidget):
    """Collects inputs and shows progress; all computation is in DLPVCLogic."""

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel("DLPVC", DLPVCLogic(), defaultInputParameter="inputVolume")

    def missingInputs(self) -> str:
        if not self._parameterNode.inputVolume:
            return _("Select a SPECT volume.")
        if not self._parameterNode.segmentation:
            return _("Select a segmentation.")
        return ""

    def onApplyButton(self) -> None:
        parameters = self._parameterNode
        table = self.runWithProgress(
            REQUIRED_PACKAGES,
            lambda progress: self.logic.process(
                parameters.inputVolume, parameters.segmentation, parameters.outputTable, progress=progress
            ),
        )
        if table is not None:
            parameters.outputTable = table
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()


class DLPVCLogic(ScriptedLoadableModuleLogic):
    """Runs in batch mode too: no widget, no dialog, no event processing here.

    Usage from the Python console or ``Slicer --no-main-window --python-script``::

        table = slicer.util.getModuleLogic("DLPVC").process(spectNode, segmentationNode)
    """

    def getParameterNode(self):
        return DLPVCParameterNode(super().getParameterNode())

    def process(self, inputVolume, segmentation, outputTable=None, progress=None):
        """Write the per-segment activity of ``inputVolume`` (Bq/mL) into a table node and return it.

        ``outputTable`` is filled when given, else a new table node is added. The input nodes are
        never modified; on invalid input a ValueError is raised and nothing is written.
        """
        from DLPVCLib.logic import segment_activity_table

        return segment_activity_table(inputVolume, segmentation, outputTable, progress=progress)


class DLPVCTest(ScriptedLoadableModuleTest):
    """Self-test: runs the logic on a synthetic SPECT with two segments of known activity."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_table()

    def test_segment_table(self):
        import numpy as np
        import SimpleITK as sitk

        from DosimetryCore import mrml

        activity = np.zeros((20, 24, 28), np.float32)
        activity[5:10, 5:10, 5:10] = 1000.0
        activity[12:16, 12:18, 14:20] = 250.0
        image = sitk.GetImageFromArray(activity)
        image.SetSpacing((4.0, 4.0, 4.0))
        image.SetMetaData("deepdosimetry.unit", "Bq/mL")
        spect = mrml.add_volume_node(slicer.mrmlScene, image, "SPECT")
        labels = (activity == 1000.0).astype(np.uint16) + 2 * (activity == 250.0).astype(np.uint16)
        labelmap = sitk.GetImageFromArray(labels)
        labelmap.CopyInformation(image)
        segmentation = mrml.add_segmentation_node(slicer.mrmlScene, labelmap, {1: "hot", 2: "warm"}, "Segments")
        before = slicer.util.arrayFromVolume(spect).copy()
        table = DLPVCLogic().process(spect, segmentation)
        rows = mrml.rows_from_table_node(table)
        self.assertEqual([row["segment"] for row in rows], ["hot", "warm"])
        self.assertAlmostEqual(rows[0]["volume_ml"], 125 * 0.064, places=4)
        self.assertAlmostEqual(rows[0]["activity_MBq"], 1000.0 * 125 * 0.064 / 1e6, places=9)
        self.assertAlmostEqual(rows[1]["mean_Bq_per_mL"], 250.0, places=4)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(spect), before)
        self.delayDisplay("DLPVC segment table test passed")
