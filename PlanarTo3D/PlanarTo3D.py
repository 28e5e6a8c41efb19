"""PlanarTo3D Slicer module: 3D 177Lu activity from anterior/posterior planar scintigraphy.

Imports a planar ANT/POST acquisition (NM DICOM) as volumes and a counts table; with the patient's pre-therapy
PET/CT and organ segmentation, trains the patient-specific ResUNet (Lopez-Montes et al.) or slice diffusion prior and
reconstructs the 3D activity, with a per-organ table that sets the conjugate-view estimate beside it; the diffusion
method adds a per-voxel uncertainty map and each organ's spread.
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

from DeepDosimetryCore import DeepDosimetryWidgetMixin, installedModels

DEFAULT_MODEL = "planar3d-resunet"
DEFAULT_DIFFUSION_MODEL = "planar3d-diffusion"
METHODS = {"ResUNet": "resunet", "Diffusion": "diffusion"}
DIFFUSION_CHOICES = installedModels(DEFAULT_DIFFUSION_MODEL) or [DEFAULT_DIFFUSION_MODEL]
MODEL_CHOICES = [name for name in installedModels("planar3d") if name not in DIFFUSION_CHOICES] or [DEFAULT_MODEL]
"""The installed generic PlanarTo3D ResUNets and diffusion priors (the default name when none is installed:
Reconstruct then says so)."""


class PlanarTo3D(ScriptedLoadableModule):
    """Module description shown in Slicer's module list."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("PlanarTo3D")
        self.parent.categories = ["Nuclear Medicine.DeepDosimetry"]
        self.parent.dependencies = ["DeepDosimetryCore"]
        self.parent.contributors = ["DeepDosimetry developers"]
        self.parent.helpText = _(
            "3D activity from two planar views (Lopez-Montes et al.). Apply imports an anterior/posterior NM planar "
            "acquisition: each view becomes a coronal one-slice volume of counts (the posterior mirrored into the "
            "anterior orientation) and a table gives total counts, frame duration and count rate. In '3D "
            "activity', with the pre-therapy PET/CT and the organs: 'Train patient model' fine-tunes the generic "
            "ResUNet (or, with the method Diffusion, the slice diffusion prior) on variations of the patient's PET "
            "(resumable), 'Reconstruct' writes the 3D activity (Bq/mL) on the CT grid, tied to the measured counts, "
            "and a table of organ activities beside the conjugate-view estimates. The method Diffusion samples the "
            "prior several times consistently with the planar images: the activity is the samples' mean, the "
            "uncertainty volume their per-voxel standard deviation, and the table gives each organ's spread."
        )
        self.parent.acknowledgementText = _("Method: Lopez-Montes et al., patient-specific AI for 3D dosimetry.")


@parameterNodeWrapper
class PlanarTo3DParameterNode:
    """Inputs and outputs of the PlanarTo3D panel (bound to the .ui by SlicerParameterName)."""

    planarFiles: str
    anteriorVolume: vtkMRMLScalarVolumeNode
    posteriorVolume: vtkMRMLScalarVolumeNode
    countsTable: vtkMRMLTableNode
    ctVolume: vtkMRMLScalarVolumeNode
    petVolume: vtkMRMLScalarVolumeNode
    organSegmentation: vtkMRMLSegmentationNode
    sensitivityCpsPerMBq: Annotated[float, WithinRange(0.01, 1000.0)] = 9.5
    modelName: Annotated[str, Choice(MODEL_CHOICES)] = MODEL_CHOICES[0]
    method: Annotated[str, Choice(list(METHODS))] = "ResUNet"
    diffusionModelName: Annotated[str, Choice(DIFFUSION_CHOICES)] = DIFFUSION_CHOICES[0]
    samples: Annotated[int, WithinRange(1, 64)] = 4
    patientModelFolder: str = ""
    variations: Annotated[int, WithinRange(2, 1000)] = 100
    epochs: Annotated[int, WithinRange(1, 100)] = 4
    activityVolume: vtkMRMLScalarVolumeNode
    organTable: vtkMRMLTableNode
    uncertaintyVolume: vtkMRMLScalarVolumeNode


class PlanarTo3DWidget(DeepDosimetryWidgetMixin, ScriptedLoadableModuleWidget):
    """Collects inputs and shows progress; all computation is in PlanarTo3DLogic."""

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel("PlanarTo3D", PlanarTo3DLogic())
        self.ui.trainButton.connect("clicked(bool)", self.onTrainButton)
        self.ui.reconstructButton.connect("clicked(bool)", self.onReconstructButton)

    def checkCanApply(self, caller=None, event=None) -> None:
        DeepDosimetryWidgetMixin.checkCanApply(self, caller, event)
        missing = self.missingPatientInputs() if self._parameterNode else _("No parameter node.")
        self.ui.reconstructButton.enabled = not missing
        self.ui.reconstructButton.toolTip = missing or _("3D activity from the imported views.")
        needsFolder = missing or (_("Enter the patient model folder.") if not self.patientFolder() else "")
        self.ui.trainButton.enabled = not needsFolder
        self.ui.trainButton.toolTip = needsFolder or _("Fine-tune the generic model on the patient's PET variations.")

    def patientFolder(self) -> str:
        return self._parameterNode.patientModelFolder.strip()

    def methodAndModel(self) -> tuple[str, str]:
        """The chosen method ("resunet" or "diffusion") and its generic model."""
        parameters = self._parameterNode
        method = METHODS[parameters.method]
        return method, parameters.diffusionModelName if method == "diffusion" else parameters.modelName

    def missingPatientInputs(self) -> str:
        parameters = self._parameterNode
        for node, message in (
            (parameters.anteriorVolume, _("Import the planar views first.")),
            (parameters.posteriorVolume, _("Import the planar views first.")),
            (parameters.ctVolume, _("Select the CT volume.")),
            (parameters.petVolume, _("Select the pre-therapy PET.")),
            (parameters.organSegmentation, _("Select the organ segmentation.")),
        ):
            if not node:
                return message
        return ""

    def patientNodes(self):
        parameters = self._parameterNode
        return (parameters.anteriorVolume, parameters.posteriorVolume, parameters.ctVolume, parameters.petVolume,
                parameters.organSegmentation)  # fmt: skip

    def onTrainButton(self) -> None:
        parameters = self._parameterNode
        method, model = self.methodAndModel()
        folder = self.runWithProgress(
            lambda progress: self.logic.trainPatientModel(
                *self.patientNodes(), self.patientFolder(), modelName=model, method=method,
                variations=parameters.variations, epochs=parameters.epochs, progress=progress,
            ),
        )  # fmt: skip
        if folder is not None:
            self.ui.statusLabel.text = _("Patient model written to {folder}.").format(folder=folder)

    def onReconstructButton(self) -> None:
        import os

        parameters = self._parameterNode
        folder = self.patientFolder()
        method, model = self.methodAndModel()
        outputs = self.runWithProgress(
            lambda progress: self.logic.reconstruct(
                *self.patientNodes(), parameters.sensitivityCpsPerMBq, modelName=model, method=method,
                patientModelFolder=folder if folder and os.path.isdir(folder) else None, samples=parameters.samples,
                activityVolume=parameters.activityVolume, organTable=parameters.organTable,
                uncertaintyVolume=parameters.uncertaintyVolume, progress=progress,
            ),
        )  # fmt: skip
        if outputs is not None:
            parameters.activityVolume, parameters.organTable = outputs[:2]
            if outputs[2] is not None:
                parameters.uncertaintyVolume = outputs[2]
            slicer.util.setSliceViewerLayers(background=parameters.ctVolume, foreground=outputs[0],
                                             foregroundOpacity=0.5, fit=True)  # fmt: skip

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


    def trainPatientModel(self, anteriorVolume, posteriorVolume, ctVolume, petVolume, organSegmentation, folder,
                          modelName=None, method="resunet", variations=100, epochs=4, progress=None):  # fmt: skip
        """Fine-tune the generic ``modelName`` of ``method`` ("resunet" or "diffusion"; default: the method's
        generic model) on ``variations`` variations of the patient's PET (within its CT and organs, at the
        measured count level) into ``folder``; resumes an interrupted run. Returns the folder of the saved patient
        model (weights and card)."""
        from PlanarTo3DLib.logic import train_patient_model

        nodes = (anteriorVolume, posteriorVolume, ctVolume, petVolume, organSegmentation)
        return train_patient_model(*nodes, folder, method=method, model_name=modelName, variations=variations,
                                   epochs=epochs, progress=progress)  # fmt: skip

    def reconstruct(self, anteriorVolume, posteriorVolume, ctVolume, petVolume, organSegmentation,
                    sensitivityCpsPerMBq, modelName=None, method="resunet", patientModelFolder=None, samples=4,
                    activityVolume=None, organTable=None, uncertaintyVolume=None, progress=None):  # fmt: skip
        """3D activity (Bq/mL, CT grid) and the organ table (with the conjugate-view estimate) by ``method``
        ("resunet" or "diffusion": the mean of ``samples`` samples, their standard deviation in the uncertainty
        volume and each organ's spread in the table); the patient model of ``patientModelFolder`` when given, else
        the generic ``modelName`` (default: the method's). Returns ``(activityVolume, organTable,
        uncertaintyVolume or None)``; inputs are never modified, invalid input raises a ValueError and nothing is
        written."""
        from PlanarTo3DLib.logic import reconstruct_volume

        return reconstruct_volume(anteriorVolume, posteriorVolume, ctVolume, petVolume, organSegmentation,
                                  sensitivityCpsPerMBq, method=method, model_name=modelName,
                                  patient_model_dir=patientModelFolder, samples=samples, output_volume=activityVolume,
                                  output_table=organTable, output_uncertainty=uncertaintyVolume,
                                  progress=progress)  # fmt: skip


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
