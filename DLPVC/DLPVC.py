"""DLPVC Slicer module: partial-volume correction of quantitative 177Lu SPECT (Leube et al., J Nucl Med 2024).

Two methods: iterative Yang PVC (IY-PVC, with the segments as regions) and DL-PVC (a trained
network on the whole field of view), offered only when a DL-PVC model is installed under
``Resources/Models``. All computation is in ``DLPVCLib``.
"""

from typing import Annotated

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

from DeepDosimetryCore import DEVICES, DeepDosimetryWidgetMixin, installedModels
from DLPVCLib.constants import DEFAULT_FWHM_MM, MODEL_NAME_PREFIX

IY_CHOICE = "IY-PVC"
DL_CHOICE_PREFIX = "DL-PVC: "


def installedDLPVCModels():
    """Names of the installed DL-PVC models (``Resources/Models/dlpvc*``); the same rule as
    ``DLPVCLib.correction.installed_models``."""
    return installedModels(MODEL_NAME_PREFIX)


METHOD_CHOICES = [*(DL_CHOICE_PREFIX + name for name in installedDLPVCModels()), IY_CHOICE]
"""The panel's methods: one DL-PVC entry per installed model (the paper's method first), then IY-PVC."""


def methodAndModel(choice):
    """``("dl", model name)`` or ``("iy", None)`` for a method choice of the panel."""
    if choice.startswith(DL_CHOICE_PREFIX):
        return "dl", choice[len(DL_CHOICE_PREFIX):]
    return "iy", None


class DLPVC(ScriptedLoadableModule):
    """Module description shown in Slicer's module list."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DLPVC")
        self.parent.categories = ["Nuclear Medicine.DeepDosimetry"]
        self.parent.dependencies = ["DeepDosimetryCore"]
        self.parent.contributors = ["DeepDosimetry developers"]
        self.parent.helpText = _(
            "Partial-volume correction of quantitative 177Lu SPECT in Bq/mL (Leube et al., J Nucl Med 2024).<br>"
            "<b>IY-PVC</b>: iterative Yang correction (as PETPVC's IY) with the segments as regions; needs a "
            "segmentation and the FWHM of the reconstructed SPECT's resolution (mm, along x, y, z; the default "
            "18.5 mm is the Siemens MELP collimator's system resolution at 200 mm, for reconstructions without "
            "resolution modelling). It does not keep the total activity exactly.<br>"
            "<b>DL-PVC</b> (listed when a trained model is installed): the network corrects the whole field of "
            "view on its training grid (e.g. 128^3 voxels of 4.8 mm, centred on the SPECT) and the result is "
            "resampled back onto the SPECT's grid with its total activity kept; no segmentation needed.<br>"
            "With a segmentation, a table lists per segment the volume (mL), the mean activity concentration "
            "before and after (Bq/mL) and the activity before and after (MBq). The input nodes are never "
            "modified; Cancel leaves nothing written."
        )
        self.parent.acknowledgementText = _(
            "Method: Leube et al., J Nucl Med 2024. Iterative Yang as in the PETPVC toolbox (Thomas et al. 2016)."
        )


@parameterNodeWrapper
class DLPVCParameterNode:
    """Inputs and outputs of the DLPVC panel (bound to the .ui by SlicerParameterName)."""

    inputVolume: vtkMRMLScalarVolumeNode
    method: Annotated[str, Choice(METHOD_CHOICES)] = METHOD_CHOICES[0]
    segmentation: vtkMRMLSegmentationNode
    fwhmXMm: Annotated[float, WithinRange(0.5, 100.0)] = DEFAULT_FWHM_MM
    fwhmYMm: Annotated[float, WithinRange(0.5, 100.0)] = DEFAULT_FWHM_MM
    fwhmZMm: Annotated[float, WithinRange(0.5, 100.0)] = DEFAULT_FWHM_MM
    iterations: Annotated[int, WithinRange(1, 100)] = 10
    device: Annotated[str, Choice(DEVICES)] = "auto"
    outputVolume: vtkMRMLScalarVolumeNode
    outputTable: vtkMRMLTableNode


class DLPVCWidget(DeepDosimetryWidgetMixin, ScriptedLoadableModuleWidget):
    """Collects inputs and shows progress; all computation is in DLPVCLogic."""

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel("DLPVC", DLPVCLogic(), defaultInputParameter="inputVolume")

    def missingInputs(self) -> str:
        if not self._parameterNode.inputVolume:
            return _("Select a SPECT volume.")
        if self._parameterNode.method == IY_CHOICE and not self._parameterNode.segmentation:
            return _("IY-PVC needs a segmentation: select one.")
        return ""

    def checkCanApply(self, caller=None, event=None):
        super().checkCanApply(caller, event)
        if self._parameterNode:
            iterative = self._parameterNode.method == IY_CHOICE
            for widget in (self.ui.fwhmXSpinBox, self.ui.fwhmYSpinBox, self.ui.fwhmZSpinBox, self.ui.iterationsSpinBox):
                widget.enabled = iterative
            self.ui.deviceComboBox.enabled = not iterative

    def onApplyButton(self) -> None:
        parameters = self._parameterNode
        method, modelName = methodAndModel(parameters.method)
        result = self.runWithProgress(
            lambda progress: self.logic.process(
                parameters.inputVolume,
                method,
                parameters.segmentation,
                fwhmMm=(parameters.fwhmXMm, parameters.fwhmYMm, parameters.fwhmZMm),
                iterations=parameters.iterations,
                modelName=modelName,
                device=parameters.device,
                outputVolume=parameters.outputVolume,
                outputTable=parameters.outputTable,
                progress=progress,
            ),
        )
        if result is None:
            return
        volume, table = result
        parameters.outputVolume = volume
        volume.CreateDefaultDisplayNodes()
        slicer.util.setSliceViewerLayers(background=volume, fit=True)
        self.showWarnings(volume)
        if table is not None:
            parameters.outputTable = table
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()


class DLPVCLogic(ScriptedLoadableModuleLogic):
    """Runs in batch mode too: no widget, no dialog, no event processing here.

    Usage from the Python console or ``Slicer --no-main-window --python-script``::

        logic = slicer.util.getModuleLogic("DLPVC")
        corrected, table = logic.process(spectNode, "iy", segmentationNode, fwhmMm=(18.5, 18.5, 18.5))
        corrected, table = logic.process(spectNode, "dl")  # needs an installed DL-PVC model; table is None
    """

    def getParameterNode(self):
        return DLPVCParameterNode(super().getParameterNode())

    def process(
        self,
        inputVolume,
        method,
        segmentation=None,
        fwhmMm=(DEFAULT_FWHM_MM,) * 3,
        iterations=10,
        modelName=None,
        device="auto",
        outputVolume=None,
        outputTable=None,
        progress=None,
    ):
        """Partial-volume correct ``inputVolume`` (Bq/mL) with ``method`` ``"iy"`` or ``"dl"``.

        Returns ``(corrected volume node, table node or None)``: the corrected SPECT (Bq/mL) in
        ``outputVolume`` (a new node when None) and, with a segmentation, the per-segment table
        (volume, mean before/after, activity before/after) in ``outputTable`` (new when None).
        ``modelName`` is the DL-PVC model (default ``dlpvc-r2unet``); ``fwhmMm`` (x, y, z) and
        ``iterations`` apply to IY-PVC. The input nodes are never modified; on invalid input a
        ValueError is raised and nothing is written. See ``DLPVCLib.logic.correct_volume``.
        """
        from DLPVCLib.constants import DEFAULT_MODEL
        from DLPVCLib.logic import correct_volume

        return correct_volume(
            inputVolume,
            method,
            segmentation,
            fwhm_mm=fwhmMm,
            iterations=iterations,
            model_name=modelName or DEFAULT_MODEL,
            device=device,
            output_volume=outputVolume,
            output_table=outputTable,
            progress=progress,
        )


class DLPVCTest(ScriptedLoadableModuleTest):
    """Self-test: IY-PVC of a blurred synthetic sphere, DL-PVC of a simulated case, the model list."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_iterative_yang_recovers_a_sphere()
        self.test_dl_pvc_of_a_simulated_case_keeps_its_total_activity()
        self.test_installed_models_are_listed_as_the_library_lists_them()

    def test_iterative_yang_recovers_a_sphere(self):
        import numpy as np
        import SimpleITK as sitk

        from DLPVCLib.iterative_yang import psf_blur
        from DosimetryCore.core.metadata import UNIT_KEY
        from DosimetryCore.io import mrml

        spacing_mm, fwhm_mm = 4.0, (12.0, 12.0, 12.0)
        z, y, x = np.meshgrid(*(spacing_mm * (np.arange(20) - 9.5),) * 3, indexing="ij")
        sphere = x**2 + y**2 + z**2 <= 12.0**2
        truth = sitk.GetImageFromArray(np.where(sphere, 1000.0, 50.0).astype(np.float32))
        truth.SetSpacing((spacing_mm,) * 3)
        blurred = sitk.Cast(psf_blur(truth, fwhm_mm), sitk.sitkFloat32)
        blurred.SetMetaData(UNIT_KEY, "Bq/mL")
        spect = mrml.add_volume_node(slicer.mrmlScene, blurred, "SPECT")
        labels = sitk.GetImageFromArray(sphere.astype(np.uint16))
        labels.CopyInformation(blurred)
        segmentation = mrml.add_segmentation_node(slicer.mrmlScene, labels, {1: "sphere"}, "Segments")
        before = slicer.util.arrayFromVolume(spect).copy()
        segmentsBefore = sitk.GetArrayFromImage(mrml.labelmap_from_segmentation_node(segmentation, spect)[0])

        corrected, table = DLPVCLogic().process(spect, "iy", segmentation, fwhmMm=fwhm_mm)

        row = mrml.rows_from_table_node(table)[0]
        self.assertEqual(row["segment"], "sphere")
        self.assertLess(row["mean_before_Bq_per_mL"], 800.0)
        self.assertAlmostEqual(row["mean_after_Bq_per_mL"] / 1000.0, 1.0, delta=0.03)
        self.assertEqual(corrected.GetAttribute("DeepDosimetry.Unit"), "Bq/mL")
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(spect), before)
        segmentsAfter = sitk.GetArrayFromImage(mrml.labelmap_from_segmentation_node(segmentation, spect)[0])
        np.testing.assert_array_equal(segmentsAfter, segmentsBefore)
        self.delayDisplay("DLPVC IY-PVC test passed")

    def test_dl_pvc_of_a_simulated_case_keeps_its_total_activity(self):
        import numpy as np
        import SimpleITK as sitk

        from DLPVCLib.constants import DEFAULT_MODEL
        from DLPVCLib.correction import installed_models, load_dlpvc_model
        from DLPVCLib.dataset import simulate_pvc_case
        from DosimetryCore.io import mrml

        if DEFAULT_MODEL not in installed_models():
            raise AssertionError(f"the shipped model {DEFAULT_MODEL} is not installed under Resources/Models")
        grid = load_dlpvc_model(DEFAULT_MODEL, device="cpu").grid
        case = simulate_pvc_case(7, size=grid.size[0], spacing_mm=grid.spacing_mm[0], device="cpu")
        truth = sitk.GetArrayFromImage(case.images["truth"])
        spect = mrml.add_volume_node(slicer.mrmlScene, case.images["osem_rr_noisy"], "SPECT")
        before = slicer.util.arrayFromVolume(spect).copy()

        corrected, table = DLPVCLogic().process(spect, "dl", device="cpu")

        after = slicer.util.arrayFromVolume(corrected)
        self.assertIsNone(table)
        self.assertAlmostEqual(float(after.sum()) / float(before.sum()), 1.0, places=4)
        active = truth > 0
        errorBefore = np.abs(before[active] - truth[active]).mean()
        errorAfter = np.abs(after[active] - truth[active]).mean()
        self.assertLess(errorAfter, errorBefore)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(spect), before)
        self.delayDisplay("DLPVC DL-PVC test passed")

    def test_installed_models_are_listed_as_the_library_lists_them(self):
        from DLPVCLib.constants import DEFAULT_FWHM_MM as libraryFwhm
        from DLPVCLib.correction import installed_models

        self.assertEqual(installedDLPVCModels(), installed_models())
        self.assertEqual(DEFAULT_FWHM_MM, libraryFwhm)
        self.delayDisplay("DLPVC model list test passed")
