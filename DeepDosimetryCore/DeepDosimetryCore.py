"""Hidden Slicer module that ships the DosimetryCore library with the DeepDosimetry extension.

It has no panel. Besides making ``import DosimetryCore`` work inside Slicer, it holds the
widget-side helpers the three DeepDosimetry modules share: installing missing Python packages on
Apply (after asking) and driving a progress bar with a cancel button from a
``progress(fraction, message)`` callback. Computation never lives here.
"""

import slicer
import vtk
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule
from slicer.util import VTKObservationMixin

DEVICES = ["auto", "cpu", "cuda"]


def installedModels(prefix):
    """Names of the installed models whose name starts with ``prefix``: ``Resources/Models/<prefix>*`` folders
    holding a model card, read from the folder without importing torch (which may not be installed yet when
    Slicer loads the modules); the rule of ``DosimetryCore.learning.models.list_models``."""
    from DosimetryCore.core.resources import models_dir

    try:
        folder = models_dir()
    except ValueError:
        return []
    return sorted(path.name for path in folder.glob(f"{prefix}*") if (path / "model_card.json").is_file())
"""Compute-device choices of the panels: auto picks CUDA when available (DosimetryCore.core.device)."""


class DeepDosimetryCore(ScriptedLoadableModule):
    """Registers the hidden module; see the module docstring."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "DeepDosimetry Core"
        self.parent.categories = ["Nuclear Medicine.DeepDosimetry"]
        self.parent.dependencies = []
        self.parent.contributors = ["DeepDosimetry developers"]
        self.parent.helpText = _("Shared library of the DeepDosimetry modules (no user interface).")
        self.parent.acknowledgementText = _("Part of the DeepDosimetry extension.")
        self.parent.hidden = True


def ensure_requirements(requirementsFile, requester):
    """Make sure the requirements listed in ``requirementsFile`` (a module's ``Resources/requirements.txt``) are met.

    Missing packages are listed to the user and installed only after they agree: torch through the
    PyTorch extension (so the right CUDA build is chosen), the rest with ``slicer.pydeps.pip_ensure``.
    Returns False when the user declines or an install fails.
    """
    import slicer.pydeps

    requirements = slicer.pydeps.load_requirements(requirementsFile)
    missing = [requirement for requirement in requirements if not slicer.pydeps.pip_check(requirement)]
    if not missing:
        return True
    listing = ", ".join(str(requirement) for requirement in missing)
    if not slicer.util.confirmOkCancelDisplay(
        _("DeepDosimetry needs these Python packages, which are not installed yet: {packages}.\n"
          "Install them now? This can take several minutes.").format(packages=listing)
    ):
        return False
    with slicer.util.WaitCursor():
        if any(requirement.name == "torch" for requirement in missing):
            try:
                import PyTorchUtils
            except ImportError:
                slicer.util.errorDisplay(_("Install the PyTorch extension from the Extensions Manager first."))
                return False
            if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
                slicer.util.errorDisplay(_("PyTorch could not be installed."))
                return False
        others = [requirement for requirement in missing if requirement.name != "torch"]
        if others:
            slicer.pydeps.pip_ensure(others, skip_packages=["torch"], requester=requester)
    return slicer.pydeps.pip_check(requirements)


class ProgressReporter:
    """A ``progress(fraction, message)`` callback that drives a progress bar and honours cancel.

    Clicking ``cancelButton`` makes the next report raise ``DosimetryCore.core.progress.Cancelled``,
    which the logic lets propagate without writing any output.
    """

    def __init__(self, progressBar, statusLabel, cancelButton):
        self.progressBar = progressBar
        self.statusLabel = statusLabel
        self.cancelButton = cancelButton
        self.cancelRequested = False
        self.cancelButton.connect("clicked(bool)", self.requestCancel)

    def requestCancel(self, checked=False):
        self.cancelRequested = True

    def start(self):
        self.cancelRequested = False
        self.progressBar.value = 0
        self.progressBar.visible = True
        self.cancelButton.enabled = True
        self.statusLabel.text = ""

    def finish(self, message):
        self.progressBar.visible = False
        self.cancelButton.enabled = False
        self.statusLabel.text = message

    def __call__(self, fraction, message):
        from DosimetryCore.core.progress import Cancelled

        self.progressBar.value = int(round(100 * min(max(fraction, 0.0), 1.0)))
        self.statusLabel.text = message
        slicer.app.processEvents()
        if self.cancelRequested:
            raise Cancelled(_("Cancelled by the user."))


class DeepDosimetryWidgetMixin(VTKObservationMixin):
    """Panel wiring shared by the DeepDosimetry module widgets (Slicer's scripted-module template).

    A module widget derives from this and ``ScriptedLoadableModuleWidget``, calls
    :meth:`setupPanel` from ``setup``, and implements ``missingInputs()`` (a message, or "" when
    Apply may run) and ``onApplyButton()``, which hands its work to :meth:`runWithProgress`.
    """

    def setupPanel(self, moduleName, logic, defaultInputParameter=None):
        VTKObservationMixin.__init__(self)
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._defaultInputParameter = defaultInputParameter
        uiWidget = slicer.util.loadUI(self.resourcePath(f"UI/{moduleName}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = logic
        self.progress = ProgressReporter(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        name = self._defaultInputParameter
        if name and not getattr(self._parameterNode, name):
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                setattr(self._parameterNode, name, firstVolume)

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.checkCanApply)
            self.checkCanApply()

    def checkCanApply(self, caller=None, event=None):
        missing = self.missingInputs() if self._parameterNode else _("No parameter node.")
        self.ui.applyButton.enabled = not missing
        self.ui.applyButton.toolTip = missing or _("Run.")

    def runWithProgress(self, work):
        """Install the module's missing requirements (after asking), then run ``work(progress)`` with the bar.

        The requirements are the module's ``Resources/requirements.txt``.

        Errors are shown in a dialog and raised again; a cancel leaves a status line and returns
        None. Returns ``work``'s result.
        """
        if not ensure_requirements(self.resourcePath("requirements.txt"), self.moduleName):
            return None
        from DosimetryCore.core.progress import Cancelled

        self.progress.start()
        self.ui.applyButton.enabled = False
        try:
            with slicer.util.tryWithErrorDisplay(_("DeepDosimetry: the computation failed."), waitCursor=True):
                try:
                    result = work(self.progress)
                except Cancelled:
                    self.progress.finish(_("Cancelled; nothing was written."))
                    return None
                self.progress.finish(_("Done."))
                return result
        finally:
            if self.progress.progressBar.visible:
                self.progress.finish(_("Failed; nothing was written."))
            self.checkCanApply()

    def showWarnings(self, volumeNode):
        """Show the warnings of an output's provenance (input outside a model's training domain, doubtful activity)
        in the status line, where a physicist sees them."""
        from DosimetryCore.io.mrml import warnings_of

        warnings = warnings_of(volumeNode)
        if warnings:
            self.ui.statusLabel.text = _("WARNING: ") + " | ".join(warnings)
