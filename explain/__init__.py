"""explain: explanations of tinynet models, built only on tinynet's public API.

    import explain
    explain.vanilla_gradient(model, x, target)             # dS_c/dx (Simonyan et al.)
    explain.grad_cam(model, x, target, layer="features.7") # Grad-CAM (Selvaraju et al.)
    explain.smoothgrad(model, x, target, n_samples=50)     # SmoothGrad (Smilkov et al.)
    explain.occlusion(model, x, target, (3, 8, 8), 4)      # occlusion (Zeiler & Fergus)
    explain.activation_maximization(model, layer, unit)    # feature visualization (Olah et al.)
    explain.tcav(model, layer, target, concept, randoms, class_inputs)   # TCAV (Kim et al.)

and the checks that grade them (``explain.sanity``): model-parameter randomization,
deletion/insertion curves, fragility.  Plots live in ``explain.plot`` (matplotlib is imported
only there).
"""
from .saliency import (channel_max, gradient_x_input, guided_backprop, integrated_gradients,
                       split_signs, vanilla_gradient)
from .gradcam import grad_cam, guided_grad_cam
from .smoothgrad import smoothgrad, smoothgrad_squared, vargrad
from .occlusion import occlusion
from .featurevis import activation_maximization, top_examples
from .tcav import CAV, TCAVResult, tcav, train_cav
from .sanity import (compare_methods, deletion_curve, fragility, insertion_curve,
                     model_parameter_randomization, spearman)
from . import sanity

__all__ = ["vanilla_gradient", "gradient_x_input", "integrated_gradients", "guided_backprop",
           "channel_max", "split_signs", "grad_cam", "guided_grad_cam", "smoothgrad",
           "smoothgrad_squared", "vargrad", "occlusion", "activation_maximization", "top_examples", "tcav",
           "train_cav", "CAV", "TCAVResult", "model_parameter_randomization", "deletion_curve",
           "insertion_curve", "compare_methods", "fragility", "spearman", "sanity"]
