"""explain: explanations of tinynet models, built only on tinynet's public API.

The methods of the lecture "Neural Network Explanations" (Explainable AI, Dr. Stefan
Heindorf, Paderborn University), in its notation, and checks that grade them.
docs/06_feature_visualization.md to docs/09_grading_explanations.md walk through them.

    import explain
    explain.vanilla_gradient(model, x, target)             # dS_c/dx (Simonyan et al.)
    explain.smoothgrad(model, x, target, n_samples=50)     # 1/n sum R(x + g_i) (Smilkov et al.)
    explain.grad_cam(model, x, target, layer="features.7") # ReLU(sum_k alpha_k^c A^k) (Selvaraju et al.)
    explain.occlusion(model, x, target, (3, 8, 8), 4)      # score drop under a patch (Zeiler & Fergus)
    explain.activation_maximization(model, layer, unit)    # x* = argmax_x h(x) (Olah et al.)
    explain.tcav(model, layer, target, concept, randoms, class_inputs)   # TCAV (Kim et al.)

What is where, in reading order:

    _common.py       class_score_gradients (one forward, S_c, one backward; eval mode,
                     weights untouched), layer lookup by name, hooks
    saliency.py      vanilla_gradient, gradient_x_input, integrated_gradients,
                     guided_backprop, channel_max, split_signs
    smoothgrad.py    smoothgrad, smoothgrad_squared, vargrad
    gradcam.py       grad_cam, guided_grad_cam
    occlusion.py     occlusion (the model-agnostic perturbation baseline)
    featurevis.py    activation_maximization (transforms, Fourier images), top_examples
    cav.py           train_cav, train_cavs (the linear classifier whose normal is the CAV)
    tcav.py          sensitivities, tcav_score, tcav (random runs; a calibrated test by
                     default, the classic t-test by name: docs/tcav_statistics.md)
    sanity.py        model_parameter_randomization, deletion_curve, insertion_curve,
                     compare_methods, fragility, tcav_calibration (the checks that grade
                     explanations)
    plot.py          figures (matplotlib is imported only there)
    toy.py           small tasks with a known right answer and CNNs trained on them in seconds

Every method runs the model in eval mode and hands each module its mode back; gradients are
taken even inside tn.no_grad(); the model's parameters and their .grad are left as they were.
"""
from .saliency import (channel_max, gradient_x_input, guided_backprop, integrated_gradients,
                       split_signs, vanilla_gradient)
from .gradcam import grad_cam, guided_grad_cam
from .smoothgrad import smoothgrad, smoothgrad_squared, vargrad
from .occlusion import occlusion
from .featurevis import activation_maximization, top_examples
from .tcav import CAV, TCAVResult, tcav, train_cav
from .sanity import (compare_methods, deletion_curve, fragility, insertion_curve,
                     model_parameter_randomization, spearman, tcav_calibration)
from . import sanity

__all__ = ["vanilla_gradient", "gradient_x_input", "integrated_gradients", "guided_backprop",
           "channel_max", "split_signs", "grad_cam", "guided_grad_cam", "smoothgrad",
           "smoothgrad_squared", "vargrad", "occlusion", "activation_maximization", "top_examples", "tcav",
           "train_cav", "CAV", "TCAVResult", "model_parameter_randomization", "deletion_curve",
           "insertion_curve", "compare_methods", "fragility", "spearman", "tcav_calibration",
           "sanity"]
