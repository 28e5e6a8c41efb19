"""DoseRateCNN Slicer module: absorbed dose rate from 177Lu SPECT activity and CT.

Methods: the residual CNN on the VDK dose rate (Li et al.; one entry per installed ``dose-cnn*`` model), and
DosimetryCore's voxel dose kernels with density scaling, local energy deposition and Monte Carlo; with a
segmentation, a per-segment table and a dose-rate-volume histogram chart. The "Absorbed dose" section integrates
the dose rates of several time points (registered through their CTs) into the absorbed dose (Gy).
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
from DoseRateCNNLib.constants import CNN_METHOD, CONVENTIONAL_METHODS

CNN_CHOICE_PREFIX = "CNN (residual on VDK): "
MODEL_NAME_PREFIX = "dose-cnn"

METHOD_CHOICES = [*(CNN_CHOICE_PREFIX + name for name in installedModels(MODEL_NAME_PREFIX)), *CONVENTIONAL_METHODS]
"""The panel's methods: one CNN entry per installed dose-rate model (the paper's method first), then vdk, led, mc."""


def methodAndModel(choice):
    """``("cnn", model name)`` or ``(method, None)`` for a method choice of the panel."""
    if choice.startswith(CNN_CHOICE_PREFIX):
        return CNN_METHOD, choice[len(CNN_CHOICE_PREFIX) :]
    return choice, None


class DoseRateCNN(ScriptedLoadableModule):
    """Module description shown in Slicer's module list."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DoseRateCNN")
        self.parent.categories = ["Nuclear Medicine.DeepDosimetry"]
        self.parent.dependencies = ["DeepDosimetryCore"]
        self.parent.contributors = ["DeepDosimetry developers"]
        self.parent.helpText = _(
            "Voxel dosimetry of 177Lu (Li et al.): the absorbed dose rate (Gy/h) of an activity volume (Bq/mL; "
            "SPECT, a PVC output or a PlanarTo3D output) and a CT. CNN (residual on VDK): a network trained against "
            "Monte Carlo corrects the VDK dose rate (listed when a model is installed; a warning appears when the "
            "input is outside its training domain). vdk: voxel S-value kernels with density scaling; led: local "
            "deposition of the electron energy; mc: the project's Monte Carlo. With a segmentation, a table gives "
            "each segment's mass, mean, maximum and D2/D50/D98 % dose rates, and a chart its dose-rate-volume "
            "histogram."
        )
        self.parent.acknowledgementText = _("Method: Li, Fessler, Mikell, Wilderman, Dewaraja.")


TIME_POINTS = 5
"""Time points of the panel's absorbed-dose section (the rows ``timePoint1..5``)."""
TIME_MODELS = ["AICc", "mono", "bi", "trapezoid"]
"""The absorbed-dose section's time-activity models: AICc chooses per segment."""
Hours = Annotated[float, WithinRange(0.0, 100000.0)]


@parameterNodeWrapper
class DoseRateCNNParameterNode:
    """Inputs and outputs of the DoseRateCNN panel (bound to the .ui by SlicerParameterName); ``timePoint<i>*``,
    ``administrationTime`` ... ``absorbedTable`` are the absorbed-dose section's."""

    activityVolume: vtkMRMLScalarVolumeNode
    ctVolume: vtkMRMLScalarVolumeNode
    method: Annotated[str, Choice(METHOD_CHOICES)] = METHOD_CHOICES[0]
    segmentation: vtkMRMLSegmentationNode
    device: Annotated[str, Choice(DEVICES)] = "auto"
    outputVolume: vtkMRMLScalarVolumeNode
    outputTable: vtkMRMLTableNode
    timePoint1Volume: vtkMRMLScalarVolumeNode
    timePoint1Ct: vtkMRMLScalarVolumeNode
    timePoint1Hours: Hours = 0.0
    timePoint2Volume: vtkMRMLScalarVolumeNode
    timePoint2Ct: vtkMRMLScalarVolumeNode
    timePoint2Hours: Hours = 0.0
    timePoint3Volume: vtkMRMLScalarVolumeNode
    timePoint3Ct: vtkMRMLScalarVolumeNode
    timePoint3Hours: Hours = 0.0
    timePoint4Volume: vtkMRMLScalarVolumeNode
    timePoint4Ct: vtkMRMLScalarVolumeNode
    timePoint4Hours: Hours = 0.0
    timePoint5Volume: vtkMRMLScalarVolumeNode
    timePoint5Ct: vtkMRMLScalarVolumeNode
    timePoint5Hours: Hours = 0.0
    administrationTime: str = ""
    timeModel: Annotated[str, Choice(TIME_MODELS)] = "AICc"
    effectiveHalfLifeHours: Hours = 0.0
    absorbedSegmentation: vtkMRMLSegmentationNode
    registerTimePoints: bool = True
    deformable: bool = False
    absorbedVolume: vtkMRMLScalarVolumeNode
    absorbedTable: vtkMRMLTableNode


def timePointsOf(parameters):
    """The panel's filled time-point rows as ``(hours or None (read from DICOM), volume node, CT node)``."""
    points = []
    for index in range(1, TIME_POINTS + 1):
        volume = getattr(parameters, f"timePoint{index}Volume")
        if volume:
            hours = getattr(parameters, f"timePoint{index}Hours")
            points.append((hours if hours > 0 else None, volume, getattr(parameters, f"timePoint{index}Ct")))
    return points


class DoseRateCNNWidget(DeepDosimetryWidgetMixin, ScriptedLoadableModuleWidget):
    """Collects inputs and shows progress; all computation is in DoseRateCNNLogic."""

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.setupPanel("DoseRateCNN", DoseRateCNNLogic(), defaultInputParameter="activityVolume")
        self.ui.absorbedButton.connect("clicked(bool)", self.onAbsorbedButton)

    def checkCanApply(self, caller=None, event=None) -> None:
        DeepDosimetryWidgetMixin.checkCanApply(self, caller, event)
        missing = self.missingTimePoints() if self._parameterNode else _("No parameter node.")
        self.ui.absorbedButton.enabled = not missing
        self.ui.absorbedButton.toolTip = missing or _("Integrate the time points into the absorbed dose (Gy).")

    def missingTimePoints(self) -> str:
        parameters = self._parameterNode
        points = timePointsOf(parameters)
        if not points:
            return _("Select the dose-rate volume of at least one time point.")
        for index, (hours, _volume, ct) in enumerate(points, start=1):
            if not ct:
                return _("Select the CT of time point {index}.").format(index=index)
            if hours is None and not parameters.administrationTime.strip():
                return _("Give the hours of time point {index}, or the administration time.").format(index=index)
        if len(points) == 1 and parameters.effectiveHalfLifeHours <= 0:
            return _("One time point needs the effective half-life.")
        return ""

    def missingInputs(self) -> str:
        if not self._parameterNode.activityVolume:
            return _("Select the activity volume.")
        if not self._parameterNode.ctVolume:
            return _("Select the CT volume.")
        return ""

    def onApplyButton(self) -> None:
        parameters = self._parameterNode
        method, modelName = methodAndModel(parameters.method)
        outputs = self.runWithProgress(
            lambda progress: self.logic.process(
                parameters.activityVolume,
                parameters.ctVolume,
                method,
                parameters.segmentation,
                modelName=modelName,
                device=parameters.device,
                outputVolume=parameters.outputVolume,
                outputTable=parameters.outputTable,
                progress=progress,
            ),
        )
        if outputs is not None:
            parameters.outputVolume, table, chart = outputs
            if table is not None:
                parameters.outputTable = table
            if chart is not None:
                slicer.modules.plots.logic().ShowChartInLayout(chart)
            slicer.util.setSliceViewerLayers(foreground=parameters.outputVolume, foregroundOpacity=0.5)
            self.showWarnings(parameters.outputVolume)


    def onAbsorbedButton(self) -> None:
        parameters = self._parameterNode
        outputs = self.runWithProgress(
            lambda progress: self.logic.processAbsorbedDose(
                timePointsOf(parameters),
                parameters.absorbedSegmentation,
                timeModel=None if parameters.timeModel == "AICc" else parameters.timeModel,
                effectiveHalfLifeHours=parameters.effectiveHalfLifeHours or None,
                register=parameters.registerTimePoints,
                deformable=parameters.deformable,
                administrationTime=parameters.administrationTime.strip() or None,
                outputVolume=parameters.absorbedVolume,
                outputTable=parameters.absorbedTable,
                progress=progress,
            ),
        )
        if outputs is not None:
            parameters.absorbedVolume, table, curves, dvh = outputs
            if table is not None:
                parameters.absorbedTable = table
            for chart in (curves, dvh):
                if chart is not None:
                    slicer.modules.plots.logic().ShowChartInLayout(chart)
            slicer.util.setSliceViewerLayers(foreground=parameters.absorbedVolume, foregroundOpacity=0.5)


class DoseRateCNNLogic(ScriptedLoadableModuleLogic):
    """Runs in batch mode too: no widget, no dialog, no event processing here.

    Usage from the Python console or ``Slicer --no-main-window --python-script``::

        doseRate, table, chart = slicer.util.getModuleLogic("DoseRateCNN").process(spectNode, ctNode, "cnn", segNode)
    """

    def getParameterNode(self):
        return DoseRateCNNParameterNode(super().getParameterNode())

    def process(
        self,
        activityVolume,
        ctVolume,
        method="vdk",
        segmentation=None,
        modelName=None,
        device="auto",
        outputVolume=None,
        outputTable=None,
        progress=None,
    ):
        """Write the dose rate (Gy/h) of ``activityVolume`` into a volume node (and a segment table and a
        dose-rate-volume histogram chart). ``method`` is "cnn" (with ``modelName``, default ``dose-cnn``), "vdk",
        "led" or "mc".

        Returns ``(doseRateVolume, table or None, chart or None)``. Inputs are never modified; invalid input
        raises a ValueError and nothing is written.
        """
        from DoseRateCNNLib.logic import dose_rate_map

        return dose_rate_map(
            activityVolume,
            ctVolume,
            method,
            segmentation,
            model_name=modelName,
            device=None if device == "auto" else device,
            output_volume=outputVolume,
            output_table=outputTable,
            progress=progress,
        )


    def processAbsorbedDose(
        self,
        timePoints,
        segmentation=None,
        timeModel=None,
        effectiveHalfLifeHours=None,
        register=True,
        deformable=False,
        administrationTime=None,
        outputVolume=None,
        outputTable=None,
        progress=None,
    ):
        """Absorbed dose (Gy) from ``timePoints``: ``(hours after administration or None, dose-rate (Gy/h) or
        activity (Bq/mL) node, CT node)`` in increasing time; None hours are read from the node's DICOM
        acquisition time after ``administrationTime`` (e.g. "2026-11-30T10:15"). ``timeModel``: None (AICc per
        segment), "mono", "bi" or "trapezoid"; one time point needs ``effectiveHalfLifeHours``.

        Returns ``(absorbedDoseVolume, table or None, time-dose-rate chart or None, dose-volume chart or None)``.
        Inputs are never modified; invalid input raises a ValueError and nothing is written.
        """
        from DoseRateCNNLib.absorbed import absorbed_dose_map

        return absorbed_dose_map(
            timePoints,
            segmentation,
            model=timeModel,
            effective_half_life_h=effectiveHalfLifeHours,
            register=register,
            deformable=deformable,
            administration=administrationTime,
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
        led, _, _ = DoseRateCNNLogic().process(spect, ct, "led")
        self.assertAlmostEqual(float(slicer.util.arrayFromVolume(led)[12, 12, 12]) / led_expected, 1.0, places=3)
        vdk, table, chart = DoseRateCNNLogic().process(spect, ct, "vdk", segmentation)
        self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 1)
        centre = float(slicer.util.arrayFromVolume(vdk)[12, 12, 12])
        self.assertGreater(centre, 0.9 * led_expected)
        self.assertEqual(table.GetCellText(0, 0), "source")
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(spect), before)
        self.delayDisplay("DoseRateCNN dose-rate test passed")
